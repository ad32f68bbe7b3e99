"""POST /v1/audio/transcriptions through the official openai client and raw HTTP, real sherpa-onnx."""

from __future__ import annotations

import io
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from ..conftest import build_app, load_tiny, running
from ..providers.stt_fixtures import RATE, silence, utterance


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


async def test_verbose_json_has_duration_and_a_segment(client: httpx.AsyncClient) -> None:
    audio = utterance()
    resp = await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", encoded(audio, "WAV"))},
                             data={"model": "default", "response_format": "verbose_json"})
    body = resp.json()
    assert body["task"] == "transcribe" and math.isclose(body["duration"], audio.size / RATE, abs_tol=0.01)
    assert body["segments"][0]["text"] == body["text"] != ""


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
