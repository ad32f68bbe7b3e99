"""The sherpa-onnx provider through the real library, in both modes, with tiny random models.

The models decode silence as blank and speech as random kana, so what is asserted is what a
user would see: when events come, in which order, for which stream, and that text appears."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
import soxr

from monolith.providers.sherpa_stt import SherpaSTT
from monolith.providers.sherpa_stt.models import ModelFilesError
from monolith.providers.stt import STTEvent, STTStream

from .stt_fixtures import RATE, silence, speech, stt, utterance

MODES = ["streaming", "offline"]


async def loaded(folder: Path, **config: object) -> SherpaSTT:
    provider = stt(folder, **config)
    await provider.load()
    await provider.warmup()
    return provider


async def play(stream: STTStream, audio: np.ndarray, rate: int = RATE, frame_ms: float = 20, pace: float = 0.0) -> None:
    frame = int(rate * frame_ms / 1000)
    for i in range(0, audio.size, frame):
        await stream.feed(audio[i : i + frame])
        await asyncio.sleep(pace)


async def collect(stream: STTStream, settle_s: float = 0.6) -> list[STTEvent]:
    """Events so far, after the decode loop has had time to catch up."""
    await asyncio.sleep(settle_s)
    events = []
    assert isinstance(stream, object)
    queue = stream.queue  # type: ignore[attr-defined]
    while not queue.empty():
        ev = queue.get_nowait()
        if ev is not None:
            events.append(ev)
    return events


@pytest.mark.parametrize("mode", MODES)
async def test_the_real_recognizer_loads_and_picks_its_mode_from_the_model(sherpa_models: dict[str, Path], mode: str) -> None:
    provider = await loaded(sherpa_models[mode])
    assert provider.files is not None and provider.files.mode == mode  # mode = "auto"
    assert provider.files.model_type == "transducer"
    assert provider.onnx_provider == "cpu" and provider.health_warnings() == []
    await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_speech_gives_started_partials_stopped_final_in_order(sherpa_models: dict[str, Path], mode: str) -> None:
    provider = await loaded(sherpa_models[mode])
    stream = await provider.open_stream(sample_rate=RATE, request_id="s1")
    await play(stream, utterance(lead=0.5, tail=1.5), pace=0.001)
    events = await collect(stream)
    kinds = [e.kind for e in events]
    assert kinds[0] == "speech_started" and kinds.count("final") == 1
    assert "partial" in kinds and kinds.index("partial") < kinds.index("speech_stopped") <= kinds.index("final")
    started = events[0]
    assert 400 <= started.audio_ms <= 700  # the sentence begins at 0.5 s (plus espeak's own lead-in)
    final = next(e for e in events if e.kind == "final")
    assert final.text and 2500 <= final.audio_ms <= 3300  # about the end of the sentence, not the endpoint
    partials = [e.text for e in events if e.kind == "partial"]
    assert len(set(partials)) == len(partials)  # a partial is sent only when the text changes
    assert final.text.startswith(partials[0][:1])
    await stream.close()
    await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_silence_alone_gives_no_events(sherpa_models: dict[str, Path], mode: str) -> None:
    provider = await loaded(sherpa_models[mode])
    stream = await provider.open_stream(sample_rate=RATE, request_id="quiet")
    await play(stream, silence(3.0))
    assert await collect(stream) == []
    await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_a_session_opened_after_one_closed_mid_speech_starts_afresh(sherpa_models: dict[str, Path], mode: str) -> None:
    # the closed session's voice detector is reused (loading one costs ~40 ms of the executor)
    provider = await loaded(sherpa_models[mode])
    first = await provider.open_stream(sample_rate=RATE, request_id="leaves")
    await play(first, np.concatenate([silence(1.0), speech()[: RATE]]))  # cut off mid-sentence
    assert [e.kind for e in await collect(first)][:1] == ["speech_started"]
    await first.close()
    assert provider.engine is not None and provider.engine.vads.idle == 1

    second = await provider.open_stream(sample_rate=RATE, request_id="arrives")
    assert provider.engine.vads.idle == 0
    await play(second, silence(1.0))
    assert await collect(second) == []  # nothing of the first session's speech carries over
    await play(second, np.concatenate([speech(), silence(1.5)]))
    events = await collect(second)
    assert events[0].kind == "speech_started" and 900 < events[0].audio_ms < 1400  # its own clock
    assert [e.kind for e in events][-1] == "final"
    await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_silence_after_speech_ends_each_turn(sherpa_models: dict[str, Path], mode: str) -> None:
    provider = await loaded(sherpa_models[mode], endpoint_trailing_silence_ms=500.0, vad_silence_ms=400.0)
    stream = await provider.open_stream(sample_rate=RATE, request_id="two-turns")
    await play(stream, np.concatenate([utterance(0.3, 1.2), utterance(0.0, 1.2)]))
    events = await collect(stream)
    finals = [e for e in events if e.kind == "final"]
    assert len(finals) == 2 and all(f.text for f in finals)
    assert [e.kind for e in events].count("speech_started") == 2
    assert finals[1].audio_ms - finals[0].audio_ms > 2000
    await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_eight_concurrent_streams_share_batched_decodes_and_keep_their_own_results(
    sherpa_models: dict[str, Path], mode: str
) -> None:
    provider = await loaded(sherpa_models[mode])
    alone = await provider.open_stream(sample_rate=RATE, request_id="alone")
    await play(alone, utterance())
    reference = [e.text for e in await collect(alone) if e.kind == "final"]
    await alone.close()
    engine = provider.engine
    assert engine is not None
    before_batches, before_streams = engine.batches, engine.decoded_streams

    streams = [await provider.open_stream(sample_rate=RATE, request_id=f"s{i}") for i in range(8)]
    assert provider.live_streams() == 8
    audios = [utterance() if i % 2 == 0 else silence(4.4) for i in range(8)]  # speakers and listeners
    await asyncio.gather(*(play(s, a, pace=0.002) for s, a in zip(streams, audios, strict=True)))
    results = [await collect(s, settle_s=0.2 if i else 0.8) for i, s in enumerate(streams)]

    for i, events in enumerate(results):
        finals = [e.text for e in events if e.kind == "final"]
        if i % 2 == 0:
            assert finals == reference, i  # the same audio gives the same text as decoded alone
        else:
            assert events == [], i  # silence streams hear nothing of their neighbours' speech
    streams_decoded = engine.decoded_streams - before_streams
    calls = engine.batches - before_batches
    assert streams_decoded / calls > 2  # decodes were batched across sessions
    for s in streams:
        await s.close()
    assert provider.live_streams() == 0
    await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_client_audio_at_48k_is_resampled(sherpa_models: dict[str, Path], mode: str) -> None:
    provider = await loaded(sherpa_models[mode])
    native = await provider.open_stream(sample_rate=RATE, request_id="16k")
    await play(native, utterance())
    at_16k = [e for e in await collect(native) if e.kind in ("speech_started", "final")]
    high = await provider.open_stream(sample_rate=48000, request_id="48k")
    await play(high, soxr.resample(utterance(), RATE, 48000).astype(np.float32), rate=48000)
    at_48k = [e for e in await collect(high) if e.kind in ("speech_started", "final")]
    assert [e.kind for e in at_48k] == [e.kind for e in at_16k] == ["speech_started", "final"]
    assert abs(at_48k[0].audio_ms - at_16k[0].audio_ms) <= 64  # two VAD windows
    assert at_48k[1].text
    await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_flush_mid_speech_gives_the_final_at_once(sherpa_models: dict[str, Path], mode: str) -> None:
    provider = await loaded(sherpa_models[mode])
    stream = await provider.open_stream(sample_rate=RATE, request_id="commit")
    await play(stream, np.concatenate([silence(0.4), speech()[: RATE * 2]]))  # cut mid-sentence
    await stream.flush()
    events = await collect(stream, settle_s=0.1)
    kinds = [e.kind for e in events]
    assert kinds[-2:] == ["speech_stopped", "final"] and events[-1].text
    await provider.close()


@pytest.mark.parametrize("mode", MODES)
async def test_whole_file_transcription(sherpa_models: dict[str, Path], mode: str) -> None:
    provider = await loaded(sherpa_models[mode])
    text = await provider.transcribe(np.concatenate([utterance(), utterance()]), RATE)
    assert text
    deltas = [d async for d in provider.transcribe_stream(np.concatenate([utterance(), utterance()]), RATE)]
    assert len(deltas) >= 2 and "".join(deltas) == text  # one delta per utterance (at least)
    assert await provider.transcribe(silence(2.0), RATE) == ""
    at_8k = soxr.resample(utterance(), RATE, 8000).astype(np.float32)
    assert await provider.transcribe(at_8k, 8000)
    if mode == "offline":  # the VAD that cut the files is one detector, taken from the pool and given back
        assert provider.engine is not None and provider.engine.vads.idle == 1
    await provider.close()


async def test_cuda_placement_on_a_cpu_only_build_warns_and_runs_on_cpu(sherpa_models: dict[str, Path]) -> None:
    provider = stt(sherpa_models["streaming"])
    provider.devices = (6,)
    await provider.load()
    assert provider.onnx_provider == "cpu"
    [warning] = provider.health_warnings()
    assert "no CUDA support" in warning and "cuda:6" in warning
    assert await provider.transcribe(utterance(), RATE)
    await provider.close()


async def test_missing_model_files_fail_with_the_reason(tmp_path: Path, sherpa_models: dict[str, Path]) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    with pytest.raises(ModelFilesError, match="tokens.txt"):
        await stt(empty).load()
    (empty / "tokens.txt").write_text("<blk> 0\n", encoding="utf-8")
    with pytest.raises(ModelFilesError, match="no model files found"):
        await stt(empty).load()
    with pytest.raises(ModelFilesError, match="nope.onnx does not exist"):
        await stt(sherpa_models["streaming"], encoder="nope.onnx").load()


async def test_hotwords_with_modified_beam_search(sherpa_models: dict[str, Path], tmp_path: Path) -> None:
    hotwords = tmp_path / "hotwords.txt"
    hotwords.write_text("あい\nかき\n", encoding="utf-8")
    provider = await loaded(sherpa_models["streaming"], decoding_method="modified_beam_search", hotwords_file=str(hotwords))
    assert provider.health_warnings() == []
    assert await provider.transcribe(utterance(), RATE)
    await provider.close()
    with pytest.raises(ValueError, match="modified_beam_search"):
        await stt(sherpa_models["streaming"], hotwords_file=str(hotwords)).load()
    with pytest.raises(FileNotFoundError, match="hotwords"):
        await stt(sherpa_models["streaming"], hotwords_file=str(tmp_path / "missing.txt")).load()


async def test_a_corrupt_onnx_file_is_a_load_error_not_a_crash(tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "tokens.txt").write_text("<blk> 0\n", encoding="utf-8")
    (broken / "model.onnx").write_bytes(b"garbage, not protobuf")
    with pytest.raises(ModelFilesError, match="not a valid ONNX model"):
        await stt(broken, mode="streaming").load()
