"""A streaming zipformer2 with a real model's architecture (icefall's `small` configuration,
random weights, built by scripts/tiny_zipformer.py) through the sherpa-onnx provider.

The tiny test models keep no state between chunks; this one carries a real encoder's caches
(attention keys and values, convolution context, per stream), so it is what shows that batching
streams through one `decode_streams` call gives each session exactly its own text."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np

from monolith.providers.sherpa_stt import SherpaSTT
from monolith.providers.sherpa_stt.engines import OnlineEngine
from monolith.providers.stt import STTEvent

from .stt_fixtures import RATE, silence, speech
from .test_sherpa_stt import loaded, play


async def final_text(provider: SherpaSTT, audio: np.ndarray, request_id: str) -> list[STTEvent]:
    stream = await provider.open_stream(sample_rate=RATE, request_id=request_id)
    await play(stream, audio)
    await stream.flush()
    await stream.close()
    return [ev async for ev in stream.events()]


async def test_a_real_architecture_zipformer_loads_and_batched_sessions_get_their_own_text(zipformer_small: Path) -> None:
    provider = await loaded(zipformer_small)
    assert isinstance(provider.engine, OnlineEngine)  # streaming mode, chosen from the model files
    # four speakers: the same sentence at different offsets and loudness decodes differently
    audios = [np.concatenate([silence(0.2 + 0.15 * i), speech() * (0.6 + 0.1 * i)]) for i in range(4)]
    alone = []
    for i, audio in enumerate(audios):
        events = await final_text(provider, audio, f"alone-{i}")
        assert [e.kind for e in events][0] == "speech_started" and events[-1].kind == "final"
        alone.append(events[-1].text)
    assert all(alone) and len(set(alone)) == 4

    engine = provider.engine
    before_batches, before_streams = engine.batches, engine.decoded_streams
    streams = [await provider.open_stream(sample_rate=RATE, request_id=f"s{i}") for i in range(4)]
    await asyncio.gather(*(play(s, a, pace=0.002) for s, a in zip(streams, audios, strict=True)))
    together = []
    for s in streams:
        await s.flush()
        await s.close()
        together.append([ev async for ev in s.events()][-1].text)

    assert together == alone  # each session's text is what it got decoded alone
    assert (engine.decoded_streams - before_streams) / (engine.batches - before_batches) > 1.5  # and it was batched
    await provider.close()
