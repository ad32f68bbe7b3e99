"""The remote LLM provider against a scripted OpenAI-compatible server: what it sends, what
reaches the user, how the server's errors are mapped, closing a stream, and its health checks.
vLLM's own server is used in tests/api/test_remote_llm.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from monolith.config import load_settings
from monolith.errors import InvalidRequest, Unavailable
from monolith.providers.base import EngineSpec
from monolith.providers.llm import (
    ChatMessage,
    FunctionTool,
    LLMChunk,
    NamedFunction,
    ResponseFormat,
    SamplingOptions,
    ToolCall,
    collect_tool_calls,
)
from monolith.providers.remote_llm import RemoteFailed, RemoteLLM, RemoteUnreachable

from ..fake_openai import FakeOpenAIServer
from ..vllm_server import free_port

CHAT = [ChatMessage("developer", "Be brief."), ChatMessage("user", "Hello!")]


def remote_llm(base_url: str, model_id: str = "gpt-oss-120b", **env: str) -> RemoteLLM:
    settings = load_settings(None, {"MONOLITH_LLM__BACKEND": '"remote"', "MONOLITH_LLM__REMOTE__BASE_URL": base_url,
                                    "MONOLITH_LLM__REMOTE__MAX_RETRIES": "0", **env})
    return RemoteLLM(settings.llm, EngineSpec(model_path="", model_id=model_id))


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def llm(fake: FakeOpenAIServer) -> AsyncIterator[RemoteLLM]:
    provider = remote_llm(fake.base_url, MONOLITH_LLM__REMOTE__API_KEY="sk-sekrit")
    await provider.load()
    yield provider
    await provider.close()


async def collect(stream: AsyncIterator[LLMChunk]) -> list[LLMChunk]:
    return [chunk async for chunk in stream]


async def test_streams_only_visible_text_then_the_finish_with_the_servers_counts(
        fake: FakeOpenAIServer, llm: RemoteLLM) -> None:
    fake.deltas = [{"reasoning_content": "The user greets me."}, {"content": "Hello"}, {"content": " there."}]
    chunks = await collect(llm.stream_chat(CHAT, SamplingOptions(max_tokens=9, temperature=0, seed=3, stop=("\n",)),
                                           request_id="r1"))
    assert [c.text for c in chunks] == ["Hello", " there.", ""]  # the reasoning is not for the user
    assert (chunks[-1].finish_reason, chunks[-1].prompt_tokens, chunks[-1].completion_tokens) == ("stop", 7, 2)
    sent = fake.requests[-1]
    assert sent["headers"]["authorization"] == "Bearer sk-sekrit" and sent["headers"]["x-request-id"] == "r1-1"
    body = sent["body"]
    assert body["model"] == "tiny"  # the server's only model, as llm.remote.model is not set
    assert body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello!"}]
    assert (body["max_tokens"], body["temperature"], body["seed"], body["stop"]) == (9, 0, 3, ["\n"])
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert "reasoning_effort" not in body  # not gpt-oss, and not asked for
    assert llm.running_requests() == 0 and not llm.aborted


async def test_tools_formats_and_logprobs_go_to_the_server_and_its_calls_come_back(
        fake: FakeOpenAIServer, llm: RemoteLLM) -> None:
    call = {"index": 0, "id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
    fake.deltas = [{"tool_calls": [call]}, {"tool_calls": [{"index": 0, "function": {"arguments": '{"city": '}}]},
                   {"tool_calls": [{"index": 0, "function": {"arguments": '"Tokyo"}'}}]}]
    fake.finish_reason = "tool_calls"
    tool = FunctionTool("get_weather", "Weather now.", {"type": "object", "properties": {"city": {"type": "string"}}},
                        strict=True)
    options = SamplingOptions(tools=(tool,), tool_choice=NamedFunction("get_weather"), parallel_tool_calls=False)
    history = [*CHAT, ChatMessage("assistant", None, tool_calls=(ToolCall("call_1", "get_weather", "{}"),)),
               ChatMessage("tool", "21 C", tool_call_id="call_1")]
    chunks = await collect(llm.stream_chat(history, options, request_id="t"))
    (got,) = collect_tool_calls(d for c in chunks for d in c.tool_calls)
    assert (got.id, got.name, got.arguments) == ("call_9", "get_weather", '{"city": "Tokyo"}')
    assert chunks[-1].finish_reason == "tool_calls" and all(c.text == "" for c in chunks)
    body = fake.requests[-1]["body"]
    assert body["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather now.", "parameters": tool.parameters, "strict": True}}]
    assert body["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert body["parallel_tool_calls"] is False
    assert body["messages"][2:] == [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "content": "21 C", "tool_call_id": "call_1"}]

    top = [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105]}, {"token": "Yo", "logprob": -2.5, "bytes": [89, 111]}]
    fake.deltas = [{"content": "Hi", "logprobs": {"content": [{**top[0], "top_logprobs": top}], "refusal": None}}]
    fake.finish_reason = "stop"
    schema = {"type": "object", "properties": {}}
    options = SamplingOptions(response_format=ResponseFormat("json_schema", schema, name="s"), logprobs=True, top_logprobs=2)
    chunks = await collect(llm.stream_chat(CHAT, options, request_id="u"))
    (token,) = chunks[0].logprobs
    assert (token.token, token.logprob, token.bytes, [t.token for t in token.top]) == ("Hi", -0.1, (72, 105), ["Hi", "Yo"])
    body = fake.requests[-1]["body"]
    assert body["response_format"] == {"type": "json_schema", "json_schema": {"name": "s", "schema": schema}}
    assert (body["logprobs"], body["top_logprobs"]) == (True, 2) and "tools" not in body


async def test_reasoning_effort_goes_to_gpt_oss_by_default() -> None:
    server = FakeOpenAIServer(models=("gpt-oss-120b", "other"))
    await server.start()
    provider = remote_llm(server.base_url)
    try:
        await provider.load()
        assert provider.upstream_model == "gpt-oss-120b"  # monolith's served id, served there
        await collect(provider.stream_chat(CHAT, SamplingOptions(), request_id="a"))
        await collect(provider.stream_chat(CHAT, SamplingOptions(reasoning_effort="high"), request_id="b"))
        assert [r["body"]["reasoning_effort"] for r in server.requests[1:]] == ["low", "high"]
    finally:
        await provider.close()
        await server.stop()


async def test_the_model_must_be_served_and_the_error_names_what_is() -> None:
    server = FakeOpenAIServer(models=("a", "b"))
    await server.start()
    try:
        with pytest.raises(RemoteFailed, match=r"does not serve 'c' \(llm.remote.model\); it serves a, b"):
            await remote_llm(server.base_url, MONOLITH_LLM__REMOTE__MODEL='"c"').load()
        with pytest.raises(RemoteFailed, match="serves a, b: name one in llm.remote.model"):
            await remote_llm(server.base_url, model_id="x").load()
        chosen = remote_llm(server.base_url, MONOLITH_LLM__REMOTE__MODEL='"b"')
        await chosen.load()
        assert chosen.upstream_model == "b"
        await chosen.close()
    finally:
        await server.stop()


@pytest.mark.parametrize(("status", "message", "error", "expected"), [
    (400, "This model's maximum context length is 1024 tokens.", InvalidRequest, "maximum context length"),
    (429, "too many requests", Unavailable, "busy"),
    (401, "bad key", RemoteFailed, "refused monolith's API key .*check llm.remote.api_key"),
    (404, "no such route", RemoteFailed, "answered 404 .*base_url"),
    (500, "boom", RemoteFailed, "answered 500: boom"),
])
async def test_server_errors_are_the_clients_or_the_providers(
        fake: FakeOpenAIServer, llm: RemoteLLM, status: int, message: str, error: type[Exception], expected: str) -> None:
    fake.status, fake.error_message = status, message
    with pytest.raises(error, match=expected) as caught:
        await collect(llm.stream_chat(CHAT, SamplingOptions(), request_id="e"))
    assert not llm.is_fatal(caught.value)  # the server answered: it is there
    assert "sk-sekrit" not in str(caught.value)
    if status == 400:
        assert isinstance(caught.value, InvalidRequest) and caught.value.code == "context_length_exceeded"


async def test_an_answer_without_a_finish_reason_is_a_failure(fake: FakeOpenAIServer, llm: RemoteLLM) -> None:
    fake.finish_reason = None
    with pytest.raises(RemoteFailed, match="without a finish reason"):
        await collect(llm.stream_chat(CHAT, SamplingOptions(), request_id="f"))


async def test_a_server_that_does_not_answer_is_fatal(fake: FakeOpenAIServer, llm: RemoteLLM) -> None:
    with pytest.raises(RemoteUnreachable, match="did not answer"):
        await remote_llm(f"http://127.0.0.1:{free_port()}/v1").load()
    await fake.stop()
    with pytest.raises(RemoteUnreachable) as caught:
        await collect(llm.stream_chat(CHAT, SamplingOptions(), request_id="g"))
    assert llm.is_fatal(caught.value) and llm.running_requests() == 0


async def test_closing_the_stream_closes_the_servers_answer(fake: FakeOpenAIServer, llm: RemoteLLM) -> None:
    fake.hold = True
    stream: Any = llm.stream_chat(CHAT, SamplingOptions(), request_id="barge")
    assert (await anext(stream)).text == "Hello"
    assert llm.running_requests() == 1 and fake.streaming == 1
    await stream.aclose()
    await asyncio.wait_for(fake.client_went_away.wait(), 5)  # the server saw the client go
    assert llm.running_requests() == 0 and list(llm.aborted) == ["barge-1"]


async def wait_for_problem(llm: RemoteLLM, wanted: bool, seconds: float = 10) -> str | None:
    """Call health_problem as the registry's watch does, until it says (or stops saying) something."""
    problem = None
    for _ in range(int(seconds / 0.05)):
        problem = llm.health_problem()
        if (problem is not None) == wanted:
            return problem
        await asyncio.sleep(0.05)
    raise AssertionError(f"health_problem stayed {problem!r}")


async def test_health_checks_notice_the_server_going_and_coming_back(fake: FakeOpenAIServer, llm: RemoteLLM) -> None:
    assert llm.health_problem() is None
    await fake.stop()
    problem = await wait_for_problem(llm, True)
    assert problem is not None and problem.startswith(f"unreachable: {fake.base_url} did not answer")
    await fake.start()
    await wait_for_problem(llm, False)
    fake.models = [{"id": "other", "object": "model"}]
    assert "no longer serves 'tiny' (it serves other)" in str(await wait_for_problem(llm, True))
