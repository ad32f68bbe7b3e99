"""`[llm] backend = "remote"` through monolith's own API: /health and /ready, the fallback and
reconnection rules, first against a scripted server (fast, every error path), then against
vLLM's own OpenAI API server with the tiny Llama: streaming, a closed stream aborting the
server's request, and the server going away and coming back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from monolith.config import Settings

from ..conftest import build_app, openai_client, real_llm_settings, running
from ..fake_openai import FakeOpenAIServer
from ..vllm_server import SERVED_NAME, VLLMServer
from ..voice.conftest import serve_live

FAST_RECOVERY = {"MONOLITH_SERVER__HEALTH_CHECK_INTERVAL_S": "0.1", "MONOLITH_SERVER__RESTART_BACKOFF_MAX_S": "0.5"}
HI = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}


def remote_settings(base_url: str, **env: str) -> Settings:
    """The LLM on the server at `base_url`; STT, TTS and embedding mocks."""
    return real_llm_settings({"MONOLITH_LLM__BACKEND": '"remote"', "MONOLITH_LLM__REMOTE__BASE_URL": json.dumps(base_url),
                              "MONOLITH_LLM__REMOTE__MAX_RETRIES": "0", **FAST_RECOVERY, **env})


async def wait_ready(client: httpx.AsyncClient, status: int, seconds: float = 10) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for _ in range(int(seconds / 0.05)):
        resp = await client.get("/ready")
        body = resp.json()
        if resp.status_code == status:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"/ready never answered {status}: {body}")


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    await server.start()
    yield server
    await server.stop()


# --- a scripted server ----------------------------------------------------------------------

async def test_health_shows_the_servers_url_and_never_its_credentials(fake: FakeOpenAIServer) -> None:
    keyed = {"Authorization": "Bearer client-key"}
    env = {"MONOLITH_LLM__REMOTE__API_KEY": "sk-sekrit", "MONOLITH_SERVER__API_KEYS": '["client-key"]'}
    async with running(build_app(remote_settings(fake.base_url, **env))) as client:
        health = (await client.get("/health", headers=keyed)).json()
        llm = health["providers"]["llm"]
        assert (llm["provider"], llm["serving"], llm["model"]) == ("remote", "engine", "gpt-oss-120b")
        assert llm["endpoint"] == fake.base_url and llm["placement"] == fake.base_url
        assert llm["model_path"] == "" and health["providers"]["stt"]["endpoint"] == "in-process"
        ready = await client.get("/ready", headers=keyed)
        assert ready.status_code == 200
        anonymous = (await client.get("/health")).json()["providers"]["llm"]
        assert anonymous["endpoint"] == "remote"  # the address is the operator's
        assert "sk-sekrit" not in json.dumps(health) + ready.text
        assert fake.requests[-1]["headers"]["authorization"] == "Bearer sk-sekrit"
    # A user and password in the URL are HTTP Basic auth to the server, and never shown.
    with_userinfo = fake.base_url.replace("http://", "http://alice:pa55word@")
    async with running(build_app(remote_settings(with_userinfo))) as client:
        health = (await client.get("/health")).json()
        assert health["providers"]["llm"]["endpoint"] == fake.base_url
        assert "pa55word" not in json.dumps(health) + (await client.get("/ready")).text
        assert fake.requests[-1]["headers"]["authorization"].startswith("Basic ")


async def test_an_unreachable_server_is_mocked_meanwhile_and_reconnected(fake: FakeOpenAIServer) -> None:
    app = build_app(remote_settings(fake.base_url))
    async with running(app) as client:
        assert (await wait_ready(client, 200))["providers"]["llm"]["serving"] == "engine"
        await fake.stop()
        body = await wait_ready(client, 503)
        assert body["failures"][0].startswith(f"llm: remote unreachable: {fake.base_url} did not answer")
        assert body["failures"][0].endswith("; reconnecting")
        chat = await client.post("/v1/chat/completions", json=HI)
        assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"] == "hi"  # the mock
        await fake.start()
        body = await wait_ready(client, 200)
        assert body["providers"]["llm"]["serving"] == "engine" and body["failures"] == []
        chat = await client.post("/v1/chat/completions", json=HI)
        assert chat.json()["choices"][0]["message"]["content"] == "Hello there."  # the server again
        assert app.state.registry.slots["llm"].restarts == 1


async def test_a_server_not_up_at_start_is_waited_for() -> None:
    late = FakeOpenAIServer()  # its port is chosen, nothing listens yet
    async with running(build_app(remote_settings(late.base_url, MONOLITH_LLM__FALLBACK='"none"'))) as client:
        body = await wait_ready(client, 503)
        assert "llm: remote failed to load" in body["failures"][0] and "did not answer" in body["failures"][0]
        chat = await client.post("/v1/chat/completions", json=HI)
        assert chat.status_code == 503 and chat.json()["error"]["code"] == "engine_restarting"
        await late.start()
        try:
            assert (await wait_ready(client, 200))["providers"]["llm"]["serving"] == "engine"
        finally:
            await late.stop()


async def test_the_servers_client_errors_are_400s_and_do_not_count_against_it(fake: FakeOpenAIServer) -> None:
    app = build_app(remote_settings(fake.base_url))
    async with running(app) as client:
        fake.status, fake.error_message = 400, "This model's maximum context length is 1024 tokens."
        resp = await client.post("/v1/chat/completions", json=HI)
        assert resp.status_code == 400
        assert resp.json()["error"] == {"type": "invalid_request_error", "code": "context_length_exceeded",
                                        "message": fake.error_message, "param": None}
        slot = app.state.registry.slots["llm"]
        assert slot.failures_in_a_row == 0 and slot.fallback_count == 0
        fake.status = 429
        resp = await client.post("/v1/chat/completions", json=HI)
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "llm_busy"


async def test_a_remote_llm_cannot_be_swapped_from_here(fake: FakeOpenAIServer) -> None:
    app = build_app(remote_settings(fake.base_url, MONOLITH_SERVER__ADMIN_TOKEN='"s3cret"'))
    async with running(app) as client:
        resp = await client.post("/admin/models/llm", json={"path": "weights/llm/other"},
                                 headers={"Authorization": "Bearer s3cret"})
        assert resp.status_code == 409 and "change the model on that server" in resp.json()["error"]["message"]


# --- vLLM's own server ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vllm_server(llm_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[VLLMServer]:
    # Tool calls parsed by the server (the tiny Llama's template is hermes-style); compact JSON (random weights)
    tools = ("--enable-auto-tool-choice", "--tool-call-parser", "hermes",
             "--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}')
    server = VLLMServer(llm_models["llama"], tmp_path_factory.mktemp("vllm-server"), tools)
    server.start()
    try:
        server.wait_healthy()
        yield server
    finally:
        server.kill()


def vllm_settings(server: VLLMServer, **env: str) -> Settings:
    return remote_settings(server.base_url, MONOLITH_LLM__REMOTE__MODEL=json.dumps(SERVED_NAME), **env)


MESSAGES: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello! How are you?"}]


@pytest.mark.engine
async def test_a_chat_through_monolith_is_the_servers_own_answer(vllm_server: VLLMServer) -> None:
    direct = openai.AsyncOpenAI(base_url=vllm_server.base_url, api_key="EMPTY", max_retries=0)
    own = await direct.chat.completions.create(model=SERVED_NAME, messages=MESSAGES, max_tokens=16, temperature=0)
    await direct.close()
    async with running(build_app(vllm_settings(vllm_server))) as client:
        llm = (await client.get("/health")).json()["providers"]["llm"]
        assert (llm["provider"], llm["serving"], llm["endpoint"]) == ("remote", "engine", vllm_server.base_url)
        oai = openai_client(client)
        whole = await oai.chat.completions.create(model=SERVED_NAME, messages=MESSAGES, max_tokens=16, temperature=0)
        assert whole.choices[0].message.content == own.choices[0].message.content
        assert whole.choices[0].finish_reason == own.choices[0].finish_reason
        assert whole.usage is not None and own.usage is not None
        assert (whole.usage.prompt_tokens, whole.usage.completion_tokens) == (own.usage.prompt_tokens, own.usage.completion_tokens)
        stream = await oai.chat.completions.create(model=SERVED_NAME, messages=MESSAGES, max_tokens=16, temperature=0,
                                                   stream=True, stream_options={"include_usage": True})
        chunks = [c async for c in stream]
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == own.choices[0].message.content
        assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == own.usage.total_tokens


@pytest.mark.engine
async def test_tool_calls_and_structured_outputs_are_the_servers_own(vllm_server: VLLMServer) -> None:
    tools: Any = [{"type": "function", "function": {"name": "get_weather", "strict": True, "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "enum": ["Tokyo", "Paris"]}},
        "required": ["city"], "additionalProperties": False}}}]
    ask: Any = [{"role": "user", "content": "Weather in Tokyo?"}]
    named: Any = {"type": "function", "function": {"name": "get_weather"}}
    schema: Any = {"type": "json_schema", "json_schema": {"name": "flag", "strict": True, "schema": {
        "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}}}
    direct = openai.AsyncOpenAI(base_url=vllm_server.base_url, api_key="EMPTY", max_retries=0)
    own = await direct.chat.completions.create(model=SERVED_NAME, messages=ask, tools=tools, tool_choice=named,
                                               max_tokens=120, temperature=0)
    own_json = await direct.chat.completions.create(model=SERVED_NAME, messages=ask, response_format=schema,
                                                    max_tokens=60, temperature=0)
    await direct.close()
    (own_call,) = own.choices[0].message.tool_calls or []
    async with running(build_app(vllm_settings(vllm_server))) as client:
        oai = openai.AsyncOpenAI(api_key="unused", base_url="http://monolith/v1", http_client=client, max_retries=0,
                                 _strict_response_validation=True)
        whole = await oai.chat.completions.create(model=SERVED_NAME, messages=ask, tools=tools, tool_choice=named,
                                                  max_tokens=120, temperature=0)
        (call,) = whole.choices[0].message.tool_calls or []
        # the same call (the server re-serialises a whole answer's arguments; a stream's come as written)
        assert call.function.name == own_call.function.name
        assert json.loads(call.function.arguments) == json.loads(own_call.function.arguments)
        assert whole.choices[0].finish_reason == "tool_calls"
        async with oai.chat.completions.stream(model=SERVED_NAME, messages=ask, tools=tools, tool_choice=named,
                                               max_tokens=120, temperature=0) as stream:
            final = await stream.get_final_completion()
        (streamed,) = final.choices[0].message.tool_calls or []
        assert json.loads(streamed.function.arguments) == json.loads(own_call.function.arguments)
        turn = [*ask, whole.choices[0].message.model_dump(exclude_none=True),
                {"role": "tool", "tool_call_id": call.id, "content": "21 C, clear"}]
        answer = await oai.chat.completions.create(model=SERVED_NAME, messages=turn, tools=tools, tool_choice="none",
                                                   max_tokens=8, temperature=0)
        assert answer.choices[0].message.content and answer.choices[0].message.tool_calls is None
        structured = await oai.chat.completions.create(model=SERVED_NAME, messages=ask, response_format=schema,
                                                       max_tokens=60, temperature=0, logprobs=True, top_logprobs=2)
        assert structured.choices[0].message.content == own_json.choices[0].message.content
        logprobs = structured.choices[0].logprobs
        assert logprobs is not None and logprobs.content and all(len(t.top_logprobs) == 2 for t in logprobs.content)


LONG = 1900  # tokens: seconds of work for the tiny model on CPU (about 1.5 s per 900 here)


@pytest.mark.engine
async def test_closing_the_stream_aborts_the_servers_request(vllm_server: VLLMServer) -> None:
    direct = openai.AsyncOpenAI(base_url=vllm_server.base_url, api_key="EMPTY", max_retries=0)
    whole = await direct.chat.completions.create(model=SERVED_NAME, messages=MESSAGES, max_tokens=LONG, temperature=0)
    await direct.close()
    assert whole.choices[0].finish_reason == "length"  # greedy: this answer runs the full LONG tokens
    app = build_app(vllm_settings(vllm_server))
    async with serve_live(app) as live:
        remote = live.registry.slots["llm"].primary
        client = openai.AsyncOpenAI(base_url=f"{live.http_url}/v1", api_key="unused", max_retries=0)
        generated = await vllm_server.metric("vllm:generation_tokens_total")
        stream = await client.chat.completions.create(model=SERVED_NAME, messages=MESSAGES, max_tokens=LONG,
                                                      temperature=0, stream=True)
        seen = 0
        async for chunk in stream:
            seen += bool(chunk.choices and chunk.choices[0].delta.content)
            if seen >= 3:
                break
        # The client goes away mid-answer, at once: the server has seconds of the answer left.
        # (Waiting to see it in the server's gauges first would spend that margin on a busy machine.)
        await stream.close()
        start = time.monotonic()
        while await vllm_server.metric("vllm:num_requests_running") > 0:
            assert time.monotonic() - start < 15, "the server's request was not aborted"
            await asyncio.sleep(0.05)
        made = await vllm_server.metric("vllm:generation_tokens_total") - generated
        assert 3 <= made < LONG, f"the server made {made} of {LONG} tokens"  # started, then cut short
        assert remote.running_requests() == 0 and len(remote.aborted) == 1, list(remote.aborted)
        await client.close()


@pytest.mark.engine
@pytest.mark.slow
async def test_the_server_going_away_fails_clearly_and_monolith_recovers_when_it_is_back(vllm_server: VLLMServer) -> None:
    app = build_app(vllm_settings(vllm_server, MONOLITH_LLM__FALLBACK='"none"'))
    async with running(app) as client:
        await wait_ready(client, 200)
        vllm_server.kill()
        chat = await client.post("/v1/chat/completions", json={**HI, "model": SERVED_NAME})
        assert chat.status_code in (500, 503)  # this request failed against it, or it is already known gone
        assert chat.json()["error"]["code"] in ("provider_failed", "engine_restarting")
        body = await wait_ready(client, 503)
        assert body["failures"][0].startswith("llm: remote ") and "unreachable" in body["failures"][0]
        assert vllm_server.base_url in body["failures"][0]
        chat = await client.post("/v1/chat/completions", json={**HI, "model": SERVED_NAME})
        assert chat.status_code == 503 and chat.json()["error"] == {
            "type": "service_unavailable", "code": "engine_restarting", "param": None,
            "message": "llm's engine is restarting; retry shortly"}
        vllm_server.start()  # the same port; monolith is not restarted
        await vllm_server.wait_healthy_async()
        body = await wait_ready(client, 200, seconds=60)
        assert body["providers"]["llm"]["serving"] == "engine" and body["failures"] == []
        chat = await client.post("/v1/chat/completions", json={**HI, "model": SERVED_NAME, "max_tokens": 4})
        assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] >= 1
        health = (await client.get("/health")).json()["providers"]["llm"]
        assert health["restarts"] == 1 and health["endpoint"] == vllm_server.base_url
