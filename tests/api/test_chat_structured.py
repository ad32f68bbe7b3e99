"""Structured outputs and logprobs through /v1/chat/completions on the real vLLM engine (the tiny
Llama and the tiny gpt-oss), with the openai SDK in strict mode: `parse()` with a pydantic
model gets schema-valid JSON from guided decoding, whatever the weights; logprobs come in
OpenAI's shape."""

from __future__ import annotations

import json
import math
from typing import Any, Literal

import openai
import pytest
from pydantic import BaseModel

from monolith.providers.vllm_llm import VLLMProvider

pytestmark = [pytest.mark.asyncio(loop_scope="session"), pytest.mark.engine]

ASK: list[Any] = [{"role": "user", "content": "What is the weather in Tokyo?"}]


class Weather(BaseModel):
    city: Literal["Tokyo", "Paris"]
    sunny: bool




async def test_parse_with_a_pydantic_model(sdk: openai.AsyncOpenAI) -> None:
    done = await sdk.chat.completions.parse(model="default", messages=ASK, response_format=Weather, max_tokens=120)
    message = done.choices[0].message
    assert isinstance(message.parsed, Weather) and done.choices[0].finish_reason == "stop"
    assert Weather.model_validate_json(message.content or "") == message.parsed


async def test_logprobs_in_openais_shape(sdk: openai.AsyncOpenAI, engine: VLLMProvider) -> None:
    plain = await sdk.chat.completions.create(model="default", messages=ASK, max_tokens=12)
    assert plain.choices[0].logprobs is None
    done = await sdk.chat.completions.create(model="default", messages=ASK, max_tokens=12, logprobs=True, top_logprobs=3)
    logprobs = done.choices[0].logprobs
    assert logprobs is not None and logprobs.content and logprobs.refusal is None
    for token in logprobs.content:
        assert token.logprob <= 0 and token.bytes == list(token.token.encode("utf-8", errors="replace"))
        assert 1 <= len(token.top_logprobs) <= 3
        values = [t.logprob for t in token.top_logprobs]
        assert values == sorted(values, reverse=True) and values[0] >= token.logprob - 1e-6  # the best comes first
    harmony = engine.format is not None and engine.format.harmony
    if harmony:  # only the final channel's tokens: what the user reads
        assert "".join(t.token for t in logprobs.content) == done.choices[0].message.content == "Hello there."
        assert all(math.isclose(t.logprob, 0, abs_tol=0.01) for t in logprobs.content)  # the script is certain
    else:  # every generated token, as vLLM's server gives them
        assert done.usage is not None and len(logprobs.content) == done.usage.completion_tokens
    stream = await sdk.chat.completions.create(model="default", messages=ASK, max_tokens=12, logprobs=True,
                                               top_logprobs=3, stream=True)
    streamed = [t async for c in stream if c.choices and c.choices[0].logprobs for t in c.choices[0].logprobs.content or []]
    assert [t.token for t in streamed] == [t.token for t in logprobs.content]  # temperature 0: the same tokens


async def test_json_schema_through_the_raw_api(sdk: openai.AsyncOpenAI) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False}
    done = await sdk.chat.completions.create(
        model="default", messages=ASK, max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "flag", "schema": schema, "strict": True}})
    assert isinstance(json.loads(done.choices[0].message.content or "")["ok"], bool)
