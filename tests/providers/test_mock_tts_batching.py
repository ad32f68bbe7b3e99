"""The mock TTS's model of a batched decoder: chunks share decode steps, and a cancelled one
leaves the batch at the next step."""

from __future__ import annotations

import asyncio

from monolith.config import MockTTSConfig
from monolith.providers.mock_tts import MockTTS


async def render(tts: MockTTS, text: str, rid: str) -> int:
    return sum([piece.size async for piece in tts.synthesize(text, voice="default", request_id=rid)])


async def test_eight_chunks_share_decode_steps() -> None:
    tts = MockTTS(MockTTSConfig(first_chunk_ms=10, real_time_factor=0.01), max_batch=8)
    sizes = await asyncio.gather(*(render(tts, "Twelve chars", f"r{i}") for i in range(8)))
    assert len(set(sizes)) == 1  # everyone got all their audio
    loop = tts._batch
    assert loop is not None and loop.largest == 8
    pieces = -(-sizes[0] // int(0.2 * 24000))
    first_steps = round(0.010 / loop.step_s)
    assert loop.steps <= first_steps + pieces  # the eight share every step: not eight times as many


async def test_a_cancelled_chunk_leaves_the_batch_and_the_others_finish() -> None:
    tts = MockTTS(MockTTSConfig(first_chunk_ms=10, real_time_factor=0.05), max_batch=4)
    long_text = "A long sentence for the batch. " * 4
    others = [asyncio.create_task(render(tts, long_text, f"keep{i}")) for i in range(3)]
    doomed = asyncio.create_task(render(tts, long_text, "cut"))
    await asyncio.sleep(0.05)
    doomed.cancel()
    await asyncio.sleep(0.02)
    assert tts._batch is not None and len(tts._batch.active) == 3
    sizes = await asyncio.gather(*others)
    assert len(set(sizes)) == 1 and "cut" in tts.cancelled and tts.running_requests() == 0


async def decode_time(exponent: float, chunks: int) -> float:
    """The decode time the batch loop spent on `chunks` identical chunks rendered together."""
    tts = MockTTS(MockTTSConfig(first_chunk_ms=10, real_time_factor=0.01, batch_cost_exponent=exponent), max_batch=8)
    await asyncio.gather(*(render(tts, "Twelve chars", f"r{i}") for i in range(chunks)))
    assert tts._batch is not None
    return tts._batch.busy_s


async def test_a_batch_step_costs_less_than_its_chunks_alone_unless_the_cost_is_linear() -> None:
    default = MockTTSConfig().batch_cost_exponent
    assert 0 < default < 1
    alone, together = await decode_time(default, 1), await decode_time(default, 8)
    assert alone < together < 8 * alone * 0.5  # sublinear: eight at once cost far less than eight in turn
    linear_alone, linear_together = await decode_time(1.0, 1), await decode_time(1.0, 8)
    assert abs(linear_together - 8 * linear_alone) < 1e-9  # no batching gain when a step costs b times one
