"""Chat completions on `--cpu-mock` through the openai SDK in strict mode: the agent loop with a
tool (streaming and not), structured outputs with `parse()`, logprobs, and the spec's details."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, Literal

import httpx
import openai
import pytest
from pydantic import BaseModel

from ..conftest import build_app, running

TOOLS: list[Any] = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city now.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Tokyo", "Paris"]},
                                                        "unit": {"type": "string", "enum": ["c", "f"]}},
                       "required": ["city", "unit"], "additionalProperties": False}}},
    {"type": "function", "function": {"name": "book_slot", "parameters": {
        "type": "object", "properties": {"day": {"type": "string", "format": "date"}}, "required": ["day"]}}},
]
ASK: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the weather in Tokyo?"}]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with running(build_app()) as c:
        yield c


@pytest.fixture
def sdk(http: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="unused", base_url="http://monolith/v1", http_client=http, max_retries=0,
                              _strict_response_validation=True)


async def run_agent_loop(sdk: openai.AsyncOpenAI, model: str, messages: list[Any], tool_choice: Any, **kw: Any) -> Any:
    """The SDK's agent loop: the model calls, the client runs the tool, the model answers."""
    first = await sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS, tool_choice=tool_choice, **kw)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id
    args = json.loads(call.function.arguments)
    turn = [*messages, choice.message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"city": args.get("city"), "temp_c": 21})}]
    answer = await sdk.chat.completions.create(model=model, messages=turn, tools=TOOLS, **kw)
    assert answer.choices[0].finish_reason in ("stop", "length") and not answer.choices[0].message.tool_calls
    return call, answer


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
async def test_the_agent_loop_calls_the_tool_then_answers_with_its_result(sdk: openai.AsyncOpenAI, tool_choice: Any) -> None:
    call, answer = await run_agent_loop(sdk, "default", ASK, tool_choice)
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Tokyo", "unit": "c"}  # valid for the schema
    message = answer.choices[0].message
    assert message.content == '{"city": "Tokyo", "temp_c": 21}' and message.refusal is None


async def test_auto_calls_a_tool_only_when_the_user_names_it(sdk: openai.AsyncOpenAI) -> None:
    plain = await sdk.chat.completions.create(model="default", messages=[{"role": "user", "content": "Hello"}], tools=TOOLS)
    assert plain.choices[0].message.tool_calls is None and plain.choices[0].message.content == "Hello"
    named = await sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "book_slot for Monday"}], tools=TOOLS)
    calls = named.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "book_slot"
    assert json.loads(calls[0].function.arguments) == {"day": "2024-01-01"}
    assert named.choices[0].message.content is None
    none = await sdk.chat.completions.create(
        model="default", messages=[{"role": "user", "content": "book_slot"}], tools=TOOLS, tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].finish_reason == "stop"


async def test_streamed_tool_call_deltas_reassemble_with_the_sdks_helper(sdk: openai.AsyncOpenAI) -> None:
    async with sdk.chat.completions.stream(model="default", messages=ASK, tools=TOOLS, tool_choice="required") as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in kinds and "tool_calls.function.arguments.done" in kinds
    calls = final.choices[0].message.tool_calls
    assert calls is not None and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments) == {"city": "Tokyo", "unit": "c"}
    assert final.choices[0].finish_reason == "tool_calls"


async def test_stream_chunks_are_openais_shape(http: httpx.AsyncClient) -> None:
    body = {"model": "default", "messages": ASK, "tools": TOOLS, "tool_choice": "required", "stream": True}
    resp = await http.post("/v1/chat/completions", json=body)
    chunks = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: {")]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks if "tool_calls" in c["choices"][0]["delta"]]
    assert calls[0] == {"index": 0, "id": calls[0]["id"], "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert all(set(c) == {"index", "function"} and set(c["function"]) == {"arguments"} for c in calls[1:])
    assert all(c["choices"][0]["logprobs"] is None for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


class Weather(BaseModel):
    city: Literal["Tokyo", "Paris"]
    temp_c: int
    sunny: bool
    note: str | None


async def test_parse_with_a_pydantic_model(sdk: openai.AsyncOpenAI) -> None:
    done = await sdk.chat.completions.parse(model="default", messages=ASK, response_format=Weather)
    parsed = done.choices[0].message.parsed
    assert parsed == Weather(city="Tokyo", temp_c=0, sunny=True, note="string")
    obj = await sdk.chat.completions.create(model="default", messages=ASK, response_format={"type": "json_object"})
    assert json.loads(obj.choices[0].message.content or "") == {}


async def test_logprobs_when_asked_and_null_otherwise(sdk: openai.AsyncOpenAI) -> None:
    plain = await sdk.chat.completions.create(model="default", messages=ASK)
    assert plain.choices[0].logprobs is None
    asked = await sdk.chat.completions.create(model="default", messages=ASK, logprobs=True, top_logprobs=2)
    content = asked.choices[0].logprobs and asked.choices[0].logprobs.content
    assert content and "".join(t.token for t in content) == asked.choices[0].message.content
    assert all(t.logprob == 0.0 and t.bytes == list(t.token.encode()) and len(t.top_logprobs) == 1 for t in content)
    stream = await sdk.chat.completions.create(model="default", messages=ASK, logprobs=True, stream=True)
    streamed = [t async for c in stream if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content or []]
    assert [t.token for t in streamed] == [t.token for t in content]


async def test_spec_values_are_accepted(sdk: openai.AsyncOpenAI) -> None:
    for effort in ("none", "minimal", "low", "high", "xhigh"):
        done = await sdk.chat.completions.create(model="default", messages=ASK, reasoning_effort=effort, top_p=0)
        assert done.choices[0].message.content
    raw = await sdk.chat.completions.with_raw_response.create(model="default", messages=ASK)
    choice = json.loads(raw.text)["choices"][0]
    assert choice["logprobs"] is None and choice["message"]["refusal"] is None


async def test_greedy_for_top_p_zero_and_mapped_reasoning_effort(http: httpx.AsyncClient) -> None:
    await http.post("/v1/chat/completions", json={"model": "default", "messages": ASK, "top_p": 0,
                                                  "reasoning_effort": "minimal", "temperature": 1})
    llm = http._transport.app.state.registry.slots["llm"].primary  # type: ignore[attr-defined]
    options = llm.last_options
    assert (options.temperature, options.top_p, options.reasoning_effort) == (0.0, 1.0, "low")


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not one of the tools"),
        ({"tools": None, "tool_choice": "required"}, "tool_choice needs tools"),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0"),
        ({"messages": [*ASK, {"role": "tool", "content": "x"}]}, "tool_call_id"),
        ({"messages": [*ASK, {"role": "assistant", "content": None}]}, "content or tool_calls"),
        ({"messages": [{"role": "user", "content": None}]}, "needs content"),
        ({"top_logprobs": 3}, "top_logprobs needs logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"top_p": 1.5}, "top_p"),
    ],
)
async def test_bad_tool_and_format_requests_are_400s(http: httpx.AsyncClient, patch: dict[str, Any], message: str) -> None:
    body = {"model": "default", "messages": ASK, "tools": TOOLS, **patch}
    resp = await http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400, resp.text
    assert message in resp.json()["error"]["message"]


async def test_allowed_tools_limit_what_may_be_called(sdk: openai.AsyncOpenAI) -> None:
    choice: Any = {"type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
        {"type": "function", "function": {"name": "book_slot"}}]}}
    done = await sdk.chat.completions.create(model="default", messages=ASK, tools=TOOLS, tool_choice=choice)
    calls = done.choices[0].message.tool_calls
    assert calls is not None and [c.function.name for c in calls] == ["book_slot"]
