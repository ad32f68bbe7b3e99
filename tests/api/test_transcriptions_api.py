"""POST /v1/audio/transcriptions through the official openai client and raw HTTP, real sherpa-onnx."""

from __future__ import annotations

import io
import json
import math
import zlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from ..conftest import build_app, load_tiny, make_settings, running
from ..fakes import ScriptedSTT
from ..providers.stt_fixtures import RATE, silence, speech, utterance


def encoded(samples: np.ndarray, fmt: str, rate: int = RATE, subtype: str | None = None) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


@pytest.fixture
async def client(sherpa_models: dict[str, Path], tiny_root: Path) -> AsyncIterator[httpx.AsyncClient]:
    env = {
        "MONOLITH_RAG__ENABLED": "false",
        "MONOLITH_STT__MODEL": f'"{sherpa_models["offline"]}"',
        "MONOLITH_STT__MODE": '"auto"',
        "MONOLITH_STT__MAX_TRANSCRIPTION_S": "30.0",
        "MONOLITH_STT__MAX_UPLOAD_MB": "1.0",
    }
    settings = load_tiny(tiny_root, env)
    app = build_app(settings)
    async with running(app) as c:
        assert app.state.registry.health()["stt"]["provider"] == "sherpa-onnx"
        yield c


async def test_openai_client_json_and_text(oai: openai.AsyncOpenAI) -> None:
    wav = encoded(utterance(), "WAV")
    result = await oai.audio.transcriptions.create(model="offline-transducer-tiny", file=("hello.wav", wav))
    assert result.text
    text = await oai.audio.transcriptions.create(model="offline-transducer-tiny", file=("hello.wav", wav), response_format="text")
    assert text.strip() == result.text


async def test_openai_client_streaming_deltas(oai: openai.AsyncOpenAI) -> None:
    wav = encoded(np.concatenate([utterance(), utterance()]), "WAV")
    stream = await oai.audio.transcriptions.create(
        model="offline-transducer-tiny", file=("two.wav", wav), stream=True
    )
    events = [event async for event in stream]
    deltas = [e.delta for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 2 and len(done) == 1
    assert "".join(deltas) == done[0].text


@pytest.mark.parametrize(("fmt", "subtype"), [("FLAC", None), ("OGG", "VORBIS"), ("MP3", None), ("WAV", "PCM_U8"), ("WAV", "FLOAT")])
async def test_other_containers_and_sample_widths_decode(client: httpx.AsyncClient, fmt: str, subtype: str | None) -> None:
    data = encoded(utterance(), fmt, subtype=subtype)
    resp = await client.post("/v1/audio/transcriptions", files={"file": (f"a.{fmt.lower()}", data)}, data={"model": "default"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"]


async def test_stereo_at_44k_is_downmixed_and_resampled(client: httpx.AsyncClient) -> None:
    import soxr

    mono = soxr.resample(utterance(), RATE, 44100).astype(np.float32)
    data = encoded(np.stack([mono, mono], axis=1), "WAV", rate=44100)
    resp = await client.post("/v1/audio/transcriptions", files={"file": ("s.wav", data)}, data={"model": "default"})
    assert resp.status_code == 200 and resp.json()["text"]


SPEECH_AT = (0.5, 0.5 + speech().size / RATE)  # where utterance() speaks, in seconds


def strict_client(client: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """The SDK validating every response against its own types (a missing field raises)."""
    return openai.AsyncOpenAI(api_key="unused", base_url="http://monolith/v1", http_client=client, max_retries=0,
                              _strict_response_validation=True)


async def test_verbose_json_segments_have_every_field_from_the_recognizer(client: httpx.AsyncClient) -> None:
    audio = np.concatenate([utterance(), utterance()])
    result = await strict_client(client).audio.transcriptions.create(
        model="default", file=("a.wav", encoded(audio, "WAV")), response_format="verbose_json")
    assert math.isclose(result.duration, audio.size / RATE, abs_tol=0.01)
    assert result.segments is not None and len(result.segments) == 2 and result.words is None
    second_at = audio.size / RATE / 2
    for seg, offset in zip(result.segments, (0.0, second_at), strict=True):
        # the VAD's speech, within a tenth of a second or so of where it was put
        assert abs(seg.start - (offset + SPEECH_AT[0])) < 0.35 and abs(seg.end - (offset + SPEECH_AT[1])) < 0.8
        assert seg.seek == round(seg.start * 100) and seg.temperature == 0.0
        assert seg.tokens and all(isinstance(t, int) and t > 0 for t in seg.tokens)  # ids from tokens.txt
        assert -30 < seg.avg_logprob < 0  # the mean of the tokens' log-probabilities
        data = seg.text.encode()
        assert math.isclose(seg.compression_ratio, len(data) / len(zlib.compress(data)), rel_tol=1e-3)
        assert seg.no_speech_prob == 0.0  # the VAD heard the whole utterance
    assert [s.id for s in result.segments] == [0, 1]
    assert result.text == " ".join(s.text for s in result.segments) or result.text == "".join(s.text for s in result.segments)


async def test_word_timestamps_from_the_models_token_times(client: httpx.AsyncClient) -> None:
    result = await strict_client(client).audio.transcriptions.create(
        model="whisper-1", file=("a.wav", encoded(utterance(), "WAV")), response_format="verbose_json",
        timestamp_granularities=["word", "segment"])
    assert result.words and result.segments
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in result.words)
    assert SPEECH_AT[0] - 0.35 < starts[0] and result.words[-1].end <= result.segments[-1].end + 1e-6
    assert "".join(w.word for w in result.words) == result.text.replace(" ", "")
    only_words = await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", encoded(utterance(), "WAV"))},
                                   data={"model": "default", "response_format": "verbose_json",
                                         "timestamp_granularities[]": "word"})
    assert "words" in only_words.json() and "segments" not in only_words.json()


@pytest.mark.parametrize(("data", "message"), [
    ({"response_format": "json", "timestamp_granularities[]": "word"}, "needs response_format verbose_json"),
    ({"response_format": "verbose_json", "timestamp_granularities[]": "letter"}, "'letter' is not one of"),
])
async def test_bad_timestamp_granularities_are_400(client: httpx.AsyncClient, data: dict[str, str], message: str) -> None:
    resp = await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", encoded(utterance(), "WAV"))},
                             data={"model": "default", **data})
    assert resp.status_code == 400 and message in resp.json()["error"]["message"]
    assert resp.json()["error"]["param"] == "timestamp_granularities"


async def test_silence_transcribes_to_empty_text(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/audio/transcriptions", files={"file": ("q.wav", encoded(silence(2), "WAV"))}, data={"model": "default"})
    assert resp.status_code == 200 and resp.json() == {"text": ""}


def _patched_wav(offset: int, value: int) -> bytes:
    broken = bytearray(encoded(utterance()[:8000], "WAV"))
    broken[offset : offset + 2] = value.to_bytes(2, "little")
    return bytes(broken)


@pytest.mark.parametrize(
    ("files", "data", "status", "message"),
    [
        ({"file": ("notes.txt", b"this is not audio at all")}, {"model": "default"}, 400, "could not decode"),
        ({"file": ("empty.wav", b"")}, {"model": "default"}, 400, "empty"),
        ({"file": ("width.wav", _patched_wav(34, 0))}, {"model": "default"}, 400, "could not decode"),  # 0-bit samples
        ({"file": ("codec.wav", _patched_wav(20, 0x1234))}, {"model": "default"}, 400, "Decoder not found"),
        ({"file": ("long.wav", encoded(silence(31, rate=8000), "WAV", rate=8000))}, {"model": "default"}, 400, "at most 30 s"),
        ({"file": ("big.wav", encoded(silence(40), "WAV"))}, {"model": "default"}, 413, "larger than 1 MB"),
        ({"file": ("a.wav", encoded(utterance()[:1600], "WAV"))}, {"model": "whisper-2"}, 404, "whisper-2"),
        ({"file": ("a.wav", encoded(utterance()[:1600], "WAV"))}, {"model": "default", "response_format": "srt"}, 400, "srt"),
        ({"other": ("a.wav", b"RIFF")}, {"model": "default"}, 400, "`file` field"),
    ],
)
async def test_bad_uploads_get_clear_4xx(
    client: httpx.AsyncClient, files: dict[str, tuple[str, bytes]], data: dict[str, str], status: int, message: str
) -> None:
    resp = await client.post("/v1/audio/transcriptions", files=files, data=data)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]["message"]


async def test_json_body_instead_of_multipart_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/audio/transcriptions", content=json.dumps({"file": "x"}), headers={"content-type": "application/json"})
    assert resp.status_code == 400 and "multipart" in resp.json()["error"]["message"]


async def test_the_server_keeps_serving_after_bad_uploads(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.post("/v1/audio/transcriptions", files={"file": ("x.wav", b"garbage")}, data={"model": "default"})
    ok = await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", encoded(utterance(), "WAV"))}, data={"model": "default"})
    assert ok.status_code == 200 and ok.json()["text"]


def encoded_with_av(samples: np.ndarray, container: str, codec: str) -> bytes:
    """Formats libsndfile cannot read (AAC in MP4, Opus in WebM), written with PyAV."""
    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        stream = out.add_stream(codec, rate=48000 if codec == "libopus" else RATE)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray((samples.reshape(1, -1) * 32767).astype(np.int16), format="s16", layout="mono")
        frame.sample_rate = RATE
        fmt = stream.codec_context.format
        resampler = av.AudioResampler(format=fmt.name if fmt else "fltp", layout="mono", rate=stream.codec_context.sample_rate)
        for piece in resampler.resample(frame):
            for packet in stream.encode(piece):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize(("container", "codec"), [("mp4", "aac"), ("webm", "libopus")])
async def test_formats_only_pyav_reads(client: httpx.AsyncClient, container: str, codec: str) -> None:
    data = encoded_with_av(utterance(), container, codec)
    resp = await client.post("/v1/audio/transcriptions", files={"file": (f"a.{container}", data)}, data={"model": "default"})
    assert resp.status_code == 200, resp.text
    assert resp.json()["text"]


async def test_verbose_json_from_a_streaming_model(sherpa_models: dict[str, Path], tiny_root: Path) -> None:
    """The streaming recognizer's utterances end at its endpoints; the VAD, listening along, says
    where the speech in each one was."""
    settings = load_tiny(tiny_root, {"MONOLITH_RAG__ENABLED": "false", "MONOLITH_STT__MODEL": f'"{sherpa_models["streaming"]}"'})
    audio = np.concatenate([utterance(), utterance()])
    async with running(build_app(settings)) as client:
        result = await strict_client(client).audio.transcriptions.create(
            model="gpt-4o-transcribe", file=("a.wav", encoded(audio, "WAV")), response_format="verbose_json",
            timestamp_granularities=["segment", "word"])
    assert result.segments is not None and len(result.segments) == 2 and result.words
    half = audio.size / RATE / 2
    for seg, offset in zip(result.segments, (0.0, half), strict=True):
        assert abs(seg.start - (offset + SPEECH_AT[0])) < 0.35 and abs(seg.end - (offset + SPEECH_AT[1])) < 0.8
        assert seg.tokens and seg.avg_logprob < 0 and seg.no_speech_prob == 0.0
    second = [w for w in result.words if w.start >= half]
    assert second and abs(second[0].start - (half + SPEECH_AT[0])) < 0.35  # token times count from the file's start


class TextOnlySTT(ScriptedSTT):
    """A recognizer that gives text and nothing else (no token times), as Moonshine does."""

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        return "hello there"


async def test_word_timestamps_from_a_model_without_token_times_are_a_clear_400() -> None:
    env = {"MONOLITH_STT__DEVICES": '"cpu"'} | {f"MONOLITH_{n}__PROVIDER": '"mock"' for n in ("LLM", "TTS", "EMBEDDING")}
    app = build_app(make_settings(env, cpu_mock=False), builders={"stt": lambda s, n: TextOnlySTT()})
    async with running(app) as client:
        files = {"file": ("a.wav", encoded(utterance(), "WAV"))}
        segments = await client.post("/v1/audio/transcriptions", files=files,
                                     data={"model": "default", "response_format": "verbose_json"})
        words = await client.post("/v1/audio/transcriptions", files=files,
                                  data={"model": "default", "response_format": "verbose_json",
                                        "timestamp_granularities[]": "word"})
    segment = segments.json()["segments"][0]
    assert segment["text"] == "hello there" and segment["tokens"] == [] and segment["avg_logprob"] == 0.0
    assert segment["start"] == 0.0 and math.isclose(segment["end"], utterance().size / RATE, abs_tol=0.01)
    assert words.status_code == 400 and words.json()["error"]["code"] == "word_timestamps_unsupported"
    assert "no word timestamps" in words.json()["error"]["message"]
