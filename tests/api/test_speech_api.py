"""POST /v1/audio/speech: every format decodes back, the body streams, bad input is a 400.

The mock TTS serves here (the Fish Speech provider is not in yet); what is tested is the API,
the chunking, the scheduling and the encoders, which the real provider will share."""

from __future__ import annotations

import io
import time
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest
import soundfile as sf

from ..conftest import AppFactory, build_app, load_tiny, openai_client, running
from ..voice.conftest import serve_live

SPEECH = {"model": "openaudio-s1-mini", "voice": "default", "input": "Hello there. This is a longer second sentence, to make two chunks."}


def decode(data: bytes) -> tuple[np.ndarray, int]:
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32")
        return samples, int(rate)
    except Exception:
        import av

        with av.open(io.BytesIO(data), mode="r") as container:
            stream = container.streams.audio[0]
            frames = [f.to_ndarray().reshape(-1) for f in container.decode(stream)]
            return np.concatenate(frames).astype(np.float32), int(frames and container.streams.audio[0].codec_context.sample_rate)


@pytest.mark.parametrize("fmt", ["wav", "flac", "mp3", "opus", "aac"])
async def test_each_format_decodes_to_audio_of_the_right_length(client: httpx.AsyncClient, fmt: str) -> None:
    resp = await client.post("/v1/audio/speech", json={**SPEECH, "response_format": fmt})
    assert resp.status_code == 200, resp.text
    samples, rate = decode(resp.content)
    assert rate in (24000, 48000)
    seconds = samples.size / rate
    assert 4.0 < seconds < 6.5  # the mock renders 0.08 s per character (~73 characters)
    assert float(np.abs(samples).max()) > 0.05


async def test_pcm_is_raw_16_bit_at_24k(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/audio/speech", json={**SPEECH, "response_format": "pcm"})
    assert resp.headers["content-type"] == "audio/pcm"
    assert len(resp.content) % 2 == 0 and 4.0 < len(resp.content) / 2 / 24000 < 6.5


async def test_openai_client_gets_the_body_streamed_as_chunks_render(app_factory: AppFactory) -> None:
    async with serve_live(app_factory()) as live:  # a real socket: ASGITransport would buffer the body
        base = live.url.replace("ws://", "http://").removesuffix("/v1/voice")
        oai = openai.AsyncOpenAI(api_key="unused", base_url=f"{base}/v1", max_retries=0)
        parts: list[bytes] = []
        times: list[float] = []
        start = time.perf_counter()
        async with oai.audio.speech.with_streaming_response.create(
            model="openaudio-s1-mini", voice="default", input=SPEECH["input"], response_format="wav",
        ) as resp:
            async for part in resp.iter_bytes():
                parts.append(part)
                times.append(time.perf_counter() - start)
        await oai.close()
    assert len(parts) > 2  # the header, then audio as each chunk renders, not one blob at the end
    assert times[-1] - times[0] > 0.02
    samples, rate = decode(b"".join(parts))
    assert rate == 24000 and samples.size > 24000


@pytest.mark.parametrize(
    ("patch", "status", "message"),
    [
        ({"input": "   "}, 400, "input is empty"),
        ({"input": "x" * 5000}, 400, "at most 4096"),
        ({"voice": "bariton"}, 400, "unknown voice 'bariton'"),
        ({"response_format": "ogg"}, 400, "response_format 'ogg' is not supported"),
        ({"speed": 9}, 400, "speed"),
        ({"speed": 0.2}, 400, "speed"),
        ({"stream_format": "json"}, 400, "stream_format"),
        ({"model": "tts-2"}, 404, "tts-2"),
    ],
)
async def test_bad_requests_are_400(client: httpx.AsyncClient, patch: dict[str, object], status: int, message: str) -> None:
    resp = await client.post("/v1/audio/speech", json={**SPEECH, **patch})
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]["message"]


async def test_speech_through_the_real_fish_speech(tiny_root: Path) -> None:
    settings = load_tiny(tiny_root, {"MONOLITH_TTS__PROVIDER": '"fish-speech"', "MONOLITH_RAG__ENABLED": "false"})
    app = build_app(settings)
    async with running(app) as client:
        assert app.state.registry.health()["tts"]["provider"] == "fish-speech"
        oai = openai_client(client)
        resp = await oai.audio.speech.create(model="fish-tiny", voice="default", input="Hello there. How are you?",
                                             response_format="wav")
        samples, rate = decode(resp.read())
        assert rate == 24000 and samples.size > 2048
        bad = await client.post("/v1/audio/speech", json={"model": "fish-tiny", "input": "Hi.", "voice": "../x"})
        assert bad.status_code == 400 and "unknown voice" in bad.json()["error"]["message"]


async def test_openai_voice_names_stand_for_this_servers_voices(client: httpx.AsyncClient) -> None:
    for voice in ("alloy", "nova", "marin"):
        resp = await client.post("/v1/audio/speech", json={"model": "default", "input": "Hello.", "voice": voice,
                                                           "response_format": "pcm"})
        assert resp.status_code == 200 and len(resp.content) > 1000


@pytest.mark.parametrize("speed", [0.25, 0.5, 2.0, 4.0])
async def test_speed_changes_the_length_of_the_speech(client: httpx.AsyncClient, speed: float) -> None:
    async def seconds(speed: float) -> float:
        resp = await client.post("/v1/audio/speech", json={**SPEECH, "input": "Hello there.", "speed": speed,
                                                           "response_format": "pcm"})
        assert resp.status_code == 200, resp.text
        return len(resp.content) / 2 / 24000

    normal, changed = await seconds(1.0), await seconds(speed)
    assert abs(changed * speed / normal - 1) < 0.05


@pytest.mark.parametrize("model", ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"])
async def test_openai_model_names_are_aliases_of_the_tts_model(client: httpx.AsyncClient, model: str) -> None:
    resp = await client.post("/v1/audio/speech", json={**SPEECH, "model": model, "voice": "alloy", "response_format": "pcm"})
    assert resp.status_code == 200 and len(resp.content) > 1000
    assert resp.headers["x-monolith-provider"] == "mock"


async def test_stream_format_sse_sends_base64_audio_deltas_then_done(client: httpx.AsyncClient) -> None:
    import base64
    import json

    resp = await client.post("/v1/audio/speech", json={**SPEECH, "response_format": "wav", "stream_format": "sse"})
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ")]
    deltas = [e for e in events if e["type"] == "speech.audio.delta"]
    assert len(deltas) > 1 and events[-1]["type"] == "speech.audio.done" and len(events) == len(deltas) + 1
    usage = events[-1]["usage"]
    assert usage["input_tokens"] == len(SPEECH["input"]) and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    samples, rate = decode(b"".join(base64.b64decode(d["audio"]) for d in deltas))
    plain, _ = decode((await client.post("/v1/audio/speech", json={**SPEECH, "response_format": "wav"})).content)
    assert rate == 24000 and samples.size == plain.size


async def test_flac_has_a_complete_streaminfo_header(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/audio/speech", json={**SPEECH, "response_format": "flac"})
    info = sf.info(io.BytesIO(resp.content))  # libsndfile refuses a FLAC whose STREAMINFO says 0 samples
    samples, rate = sf.read(io.BytesIO(resp.content), dtype="float32")
    assert info.format == "FLAC" and info.frames == samples.size > 0 and rate == 24000
    total = int.from_bytes(resp.content[8 + 10 : 8 + 18], "big") & ((1 << 36) - 1)  # STREAMINFO's total samples
    assert total == samples.size
