"""Streaming zipformer2s with a real model's architecture (icefall's `small` configuration,
random weights, built by scripts/tiny_zipformer.py) through the sherpa-onnx provider: the
transducer and the CTC type, each found, loaded and decoded as a downloaded model would be.

The tiny test models keep no state between chunks; these carry a real encoder's caches
(attention keys and values, convolution context, per stream), so they are what shows that
batching streams through one `decode_streams` call gives each session exactly its own text."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from monolith.providers.sherpa_stt import SherpaSTT
from monolith.providers.sherpa_stt.engines import OnlineEngine
from monolith.providers.stt import STTEvent

from .stt_fixtures import RATE, silence, speech
from .test_sherpa_stt import loaded, play

MODEL_TYPES = {"transducer": "transducer", "ctc": "zipformer2_ctc"}


async def events_of(provider: SherpaSTT, audio: np.ndarray, request_id: str) -> list[STTEvent]:
    stream = await provider.open_stream(sample_rate=RATE, request_id=request_id)
    await play(stream, audio)
    await stream.flush()
    await stream.close()
    return [ev async for ev in stream.events()]


@pytest.mark.parametrize("head", sorted(MODEL_TYPES))
async def test_a_real_architecture_zipformer_loads_and_batched_sessions_get_their_own_text(
    zipformer_models: dict[str, Path], head: str
) -> None:
    provider = await loaded(zipformer_models[head])  # model type and mode found from the files
    assert provider.files is not None and provider.files.model_type == MODEL_TYPES[head]
    assert provider.files.mode == "streaming" and isinstance(provider.engine, OnlineEngine)
    # four speakers: the sentence at different offsets, loudness and direction
    audios = [np.concatenate([silence(0.2 + 0.15 * i), speech()[:: 1 if i % 2 else -1] * (0.6 + 0.1 * i)])
              for i in range(4)]
    alone = []
    for i, audio in enumerate(audios):
        events = await events_of(provider, audio, f"alone-{i}")
        kinds = [e.kind for e in events]
        assert kinds[0] == "speech_started" and "partial" in kinds and kinds[-1] == "final"
        alone.append(events[-1].text)
    assert all(alone) and len(set(alone)) > 1

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


@pytest.mark.parametrize("head", sorted(MODEL_TYPES))
async def test_whole_file_segments_carry_token_ids_and_times(zipformer_models: dict[str, Path], head: str) -> None:
    """What verbose_json is made of, from both heads: ids from tokens.txt, one time per token
    (from the file's start), inside the segment."""
    provider = await loaded(zipformer_models[head])
    audio = np.concatenate([silence(0.5), speech(), silence(1.5)])
    segments = [s async for s in provider.transcribe_segments(audio, RATE)]
    await provider.close()
    assert segments and all(s.text for s in segments)
    for segment in segments:
        assert len(segment.token_ids) == len(segment.tokens) == len(segment.token_starts) > 0
        assert segment.start_s <= segment.token_starts[0] and segment.token_starts == tuple(sorted(segment.token_starts))
        assert 0.0 <= segment.start_s < segment.end_s <= audio.size / RATE
        assert segment.speech_s is not None and segment.speech_s > 0
