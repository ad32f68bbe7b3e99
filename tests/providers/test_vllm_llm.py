"""The vLLM provider with the real engine on CPU: streaming, abort, batching, bad input, harmony."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from monolith.errors import InvalidRequest
from monolith.providers.base import EngineSpec
from monolith.providers.llm import ChatMessage, LLMChunk, SamplingOptions
from monolith.providers.vllm_llm import VLLMProvider

from ..conftest import vllm_config

pytestmark = pytest.mark.asyncio(loop_scope="session")

CHAT = [ChatMessage("system", "Be brief."), ChatMessage("user", "Hello! How are you?")]


async def collect(stream: Any) -> list[LLMChunk]:
    return [chunk async for chunk in stream]


async def test_streams_deltas_then_a_finish_with_usage(llama_engine: VLLMProvider) -> None:
    chunks = await collect(llama_engine.stream_chat(CHAT, SamplingOptions(max_tokens=24, temperature=0), request_id="order"))
    assert len(chunks) > 2
    assert all(c.finish_reason is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.finish_reason in ("stop", "length") and last.prompt_tokens > 5 and 0 < last.completion_tokens <= 24
    text = "".join(c.text for c in chunks)
    again = await collect(llama_engine.stream_chat(CHAT, SamplingOptions(max_tokens=24, temperature=0), request_id="order"))
    assert "".join(c.text for c in again) == text  # greedy: the same text, request ids made unique
    assert llama_engine.running_requests() == 0


async def test_cancelling_the_consumer_aborts_the_engine_request(llama_engine: VLLMProvider) -> None:
    stream = llama_engine.stream_chat(CHAT, SamplingOptions(max_tokens=400, temperature=1.0, seed=1), request_id="barge")
    got = []

    async def consume() -> None:
        async for chunk in stream:
            got.append(chunk)

    task = asyncio.create_task(consume())
    for _ in range(6000):  # 30 s at most; a stream that failed or ended early is the test's failure
        if len(got) >= 3 or task.done():
            break
        await asyncio.sleep(0.005)
    assert not task.done(), task.exception() if not task.cancelled() else "cancelled"
    assert len(got) >= 3
    assert llama_engine.running_requests() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(100):
        if llama_engine.running_requests() == 0:
            break
        await asyncio.sleep(0.01)
    assert llama_engine.running_requests() == 0
    assert llama_engine.aborted[-1].startswith("barge-")
    assert all(c.finish_reason is None for c in got)


async def test_concurrent_requests_interleave(llama_engine: VLLMProvider) -> None:
    arrivals: list[int] = []

    async def one(i: int) -> None:
        async for _ in llama_engine.stream_chat(CHAT, SamplingOptions(max_tokens=40, temperature=1.0, seed=i), request_id=f"c{i}"):
            arrivals.append(i)

    await asyncio.gather(*(one(i) for i in range(4)))
    last_first = max(arrivals.index(i) for i in range(4))
    first_last = min(len(arrivals) - 1 - arrivals[::-1].index(i) for i in range(4))
    assert last_first < first_last  # every request started before any finished: continuous batching


async def test_bad_requests_are_invalid_request_errors(llama_engine: VLLMProvider) -> None:
    with pytest.raises(InvalidRequest, match="messages is empty"):
        await collect(llama_engine.stream_chat([], SamplingOptions(), request_id="empty"))
    with pytest.raises(InvalidRequest, match="more than the model's context of 512"):
        await collect(llama_engine.stream_chat(CHAT, SamplingOptions(max_tokens=600), request_id="long"))
    huge = [ChatMessage("user", "word " * 2000)]
    with pytest.raises(InvalidRequest) as err:
        await collect(llama_engine.stream_chat(huge, SamplingOptions(max_tokens=8), request_id="huge"))
    assert err.value.code == "context_length_exceeded"


async def test_the_engine_survives_a_request_that_fails_inside_it(llama_engine: VLLMProvider) -> None:
    from vllm import SamplingParams

    with pytest.raises(Exception, match="(?i)out of vocab|token id"):
        async for _ in llama_engine.engine.generate({"prompt_token_ids": [10**7]}, SamplingParams(max_tokens=2), request_id="bad-ids"):
            pass
    chunks = await collect(llama_engine.stream_chat(CHAT, SamplingOptions(max_tokens=4), request_id="after"))
    assert chunks[-1].finish_reason is not None and llama_engine.running_requests() == 0


@pytest.fixture(scope="module")
def gpt_oss_dir(llm_models: dict[str, Path]) -> Path:
    return llm_models["gpt-oss"]


async def test_gpt_oss_speaks_harmony_and_only_the_final_channel_reaches_the_user(gpt_oss_dir: Path) -> None:
    provider = VLLMProvider(vllm_config(gpt_oss_dir, max_model_len=1024), EngineSpec(model_path=str(gpt_oss_dir), model_id="tiny-gpt-oss"))
    await provider.load()
    try:
        assert provider.format is not None and provider.format.harmony  # from config.json, no flag
        assert provider.engine_kwargs["skip_tokenizer_init"] is True
        chunks = await collect(provider.stream_chat(CHAT, SamplingOptions(max_tokens=20, temperature=0), request_id="h1"))
        assert "".join(c.text for c in chunks) == "Hello there."  # the scripted final message, exactly
        assert chunks[-1].finish_reason == "stop" and provider.running_requests() == 0
    finally:
        await provider.close()
