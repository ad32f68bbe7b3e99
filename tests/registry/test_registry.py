"""Registry: loading, fallback to the mock (counted, warned), or a clear error with fallback none."""

from __future__ import annotations

import asyncio

import pytest

from monolith.errors import ProviderFailed, Unavailable
from monolith.providers.llm import ChatMessage, SamplingOptions
from monolith.registry import Registry
from monolith.scheduler.placement import Inventory, build_plan

from ..conftest import make_settings, real_llm_settings
from ..fakes import FakeRealLLM, llm_builder

HELLO = [ChatMessage("user", "hello there")]


def registry_with(fake: FakeRealLLM, fallback: str = "mock") -> Registry:
    s = real_llm_settings({"MONOLITH_LLM__FALLBACK": f'"{fallback}"'})
    return Registry(s, build_plan(s, Inventory()), builders={"llm": llm_builder(fake)})


async def text_of(registry: Registry) -> str:
    return "".join([c.text async for c in registry.llm.stream_chat(HELLO, SamplingOptions(), request_id="r1")])


async def test_real_provider_serves_when_it_loads() -> None:
    registry = registry_with(FakeRealLLM())
    await registry.load_all()
    assert await text_of(registry) == "hello there"
    status = registry.health()["llm"]
    assert status["provider"] == "fake-vllm" and not status["is_mock"] and status["fallback_count"] == 0
    assert status["loaded"] and status["endpoint"] == "in-process"
    await registry.close()


async def test_load_failure_falls_back_to_the_mock_and_counts_it() -> None:
    fake = FakeRealLLM(fail_load=True)
    registry = registry_with(fake)
    await registry.load_all()
    status = registry.health()["llm"]
    assert status["provider"] == "mock" and status["is_mock"] and status["fallback_count"] == 1
    assert "CUDA out of memory" in status["last_error"]
    assert any("failed to load" in w for w in registry.warnings())
    assert fake.closed, "a provider that failed to load must release what it took"
    assert await text_of(registry) == "hello there"
    await registry.close()


async def test_load_failure_without_fallback_is_a_clear_error() -> None:
    registry = registry_with(FakeRealLLM(fail_load=True), fallback="none")
    await registry.load_all()
    assert registry.health()["llm"]["state"] == "failed"
    with pytest.raises(Unavailable, match="llm is not available: its engine failed to load"):
        await text_of(registry)
    await registry.close()


async def test_request_failure_uses_the_mock_for_that_request() -> None:
    registry = registry_with(FakeRealLLM(fail_request=True))
    await registry.load_all()
    assert await text_of(registry) == "hello there"
    assert await text_of(registry) == "hello there"
    status = registry.health()["llm"]
    assert status["fallback_count"] == 2
    assert status["provider"] == "fake-vllm", "the real provider stays primary"
    assert any("raised during a request" in w for w in registry.warnings())
    await registry.close()


async def test_request_failure_without_fallback_reaches_the_caller() -> None:
    registry = registry_with(FakeRealLLM(fail_request=True), fallback="none")
    await registry.load_all()
    with pytest.raises(ProviderFailed, match="engine died"):
        await text_of(registry)
    assert registry.health()["llm"]["fallback_count"] == 0
    await registry.close()


async def test_failure_after_text_went_out_is_not_papered_over() -> None:
    registry = registry_with(FakeRealLLM(fail_after_first=True))
    await registry.load_all()
    with pytest.raises(ProviderFailed, match="mid-stream"):
        await text_of(registry)
    await registry.close()


async def test_cpu_mock_registry_serves_every_kind() -> None:
    s = make_settings()
    registry = Registry(s, build_plan(s, Inventory()))
    await registry.load_all()
    assert all(st["is_mock"] and st["loaded"] for st in registry.health().values())
    vectors = await registry.embedding.embed(["a b", "c"], kind="query")
    assert vectors.shape == (2, s.embedding.mock.dimension)
    audio = b"".join([c async for c in registry.tts.stream_pcm16("こんにちは", voice="default", request_id="t", sample_rate=16000)])
    assert len(audio) == 2 * int(5 * 0.08 * 16000)
    await registry.close()


async def test_tts_chunks_from_three_sessions_follow_the_first_chunk_first_policy() -> None:
    settings = make_settings({"MONOLITH_TTS__MOCK__FIRST_CHUNK_MS": "30", "MONOLITH_TTS__MOCK__REAL_TIME_FACTOR": "0"})
    registry = Registry(settings, build_plan(settings, Inventory()))
    await registry.load_all()

    async def chunk(session: str, i: int, delay: float = 0.0) -> None:
        await asyncio.sleep(delay)
        async for _ in registry.tts.stream_pcm16("Chunk.", voice="default", request_id=f"{session}-{i}",
                                                 sample_rate=24000, first_in_response=i == 0):
            pass

    # A's three chunks are queued at once; B and C start their answers while A-1 renders.
    await asyncio.gather(*(chunk("A", i) for i in range(3)), chunk("B", 0, 0.045), chunk("C", 0, 0.05))
    assert list(registry.tts.device.started) == ["A-0", "A-1", "B-0", "C-0", "A-2"]
    await registry.close()
