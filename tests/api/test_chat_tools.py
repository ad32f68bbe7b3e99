"""Tool calling through /v1/chat/completions on the real vLLM engine, with the openai SDK in
strict mode: the tiny Llama (its chat template renders tools hermes-style, vLLM's hermes parser
reads its calls) and the tiny gpt-oss (harmony's function calls).

Random or scripted weights do not call tools on their own, so the first turn forces a call with
`tool_choice` "required" or a named function (vLLM's structured outputs); the tool's result is
then sent back and the model answers (the gpt-oss script: "Hello there.")."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai
import pytest

from monolith.config import LLMConfig
from monolith.errors import InvalidRequest
from monolith.providers.llm import ChatMessage, FunctionTool, SamplingOptions
from monolith.providers.vllm_llm import VLLMProvider

from ..conftest import running, vllm_config
from .conftest import chat_app

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.engine]

# strict: the arguments are constrained to the schema (not only the call's envelope)
WEATHER: dict[str, Any] = {"type": "function", "function": {
    "name": "get_weather", "strict": True,
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "enum": ["Tokyo", "Paris"]}},
                   "required": ["city"], "additionalProperties": False}}}
CLOCK: dict[str, Any] = {"type": "function", "function": {
    "name": "get_time", "strict": True, "parameters": {"type": "object", "properties": {}, "additionalProperties": False}}}
TOOLS = [WEATHER, CLOCK]
ASK: list[Any] = [{"role": "user", "content": "What is the weather in Tokyo?"}]


@pytest.mark.parametrize("tool_choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
async def test_the_sdks_agent_loop(sdk: openai.AsyncOpenAI, engine: VLLMProvider, tool_choice: Any) -> None:
    first = await sdk.chat.completions.create(model="default", messages=ASK, tools=TOOLS, tool_choice=tool_choice,
                                              parallel_tool_calls=False, max_tokens=140)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id and call.function.name in ("get_weather", "get_time")
    if call.function.name == "get_weather":
        assert json.loads(call.function.arguments)["city"] in ("Tokyo", "Paris")  # the schema held
    result = {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temp_c": 21, "sky": "clear"})}
    turn = [*ASK, choice.message.model_dump(exclude_none=True), result]
    answer = await sdk.chat.completions.create(model="default", messages=turn, tools=TOOLS, tool_choice="none",
                                               max_tokens=16)
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.choices[0].message.tool_calls is None
    assert answer.choices[0].message.content
    if engine.format is not None and engine.format.harmony:
        assert answer.choices[0].message.content == "Hello there."  # the script, after the tool's result


async def test_streamed_tool_calls_reassemble_with_the_sdks_helper(sdk: openai.AsyncOpenAI) -> None:
    named: Any = {"type": "function", "function": {"name": "get_weather"}}
    async with sdk.chat.completions.stream(model="default", messages=ASK, tools=TOOLS, tool_choice=named,
                                           max_tokens=140) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_completion()
    deltas = [e for e in events if e.type == "tool_calls.function.arguments.delta"]
    assert len(deltas) > 1  # the arguments arrive in pieces
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "get_weather" and json.loads(call.function.arguments)["city"] in ("Tokyo", "Paris")
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.slow
async def test_gpt_oss_with_tools_offered_answers_in_the_final_channel(gpt_oss_engine: VLLMProvider) -> None:
    async with running(chat_app(gpt_oss_engine)) as http:
        sdk = openai.AsyncOpenAI(api_key="unused", base_url="http://monolith/v1", http_client=http, max_retries=0,
                                 _strict_response_validation=True)
        done = await sdk.chat.completions.create(model="default", messages=ASK, tools=TOOLS)  # auto
    assert done.choices[0].message.content == "Hello there." and done.choices[0].message.tool_calls is None
    assert done.choices[0].finish_reason == "stop"


async def test_tools_need_a_parser_for_a_template_model(llama_engine: VLLMProvider, llm_models: dict[str, Path]) -> None:
    from monolith.providers.vllm_llm.chat_format import TemplateFormat
    from monolith.providers.vllm_llm.requests import RequestBuilder

    fmt = TemplateFormat(llm_models["llama"])
    config: LLMConfig = vllm_config(llm_models["llama"])  # no tool_call_parser
    builder = RequestBuilder(config, fmt, tokenizer=fmt.tokenizer, served_name="tiny", guided=True)
    options = SamplingOptions(tools=(FunctionTool("get_time"),), tool_choice="required")
    with pytest.raises(InvalidRequest, match="llm.tool_call_parser") as err:
        builder.prepare([ChatMessage("user", "Time?")], options, 16)
    assert err.value.code == "tools_not_configured"
    builder.prepare([ChatMessage("user", "Time?")], SamplingOptions(tools=options.tools, tool_choice="none"), 16)


async def test_a_bad_tool_request_is_a_400_not_a_mock_answer(llama_engine: VLLMProvider) -> None:
    async with running(chat_app(llama_engine)) as http:
        bad_schema = {**WEATHER, "function": {**WEATHER["function"], "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "pattern": "(unclosed"}}}}}
        body = {"model": "default", "messages": ASK, "tools": [bad_schema], "tool_choice": "required"}
        resp = await http.post("/v1/chat/completions", json=body)
        assert resp.status_code == 400, resp.text
        llm = (await http.get("/health")).json()["providers"]["llm"]
        assert llm["fallback_count"] == 0 and not llm["is_mock"], llm  # the engine was not blamed
