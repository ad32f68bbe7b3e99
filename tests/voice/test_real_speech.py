"""Real words in and out on CPU: Piper (through sherpa-onnx) speaks, Moonshine (through
sherpa-onnx) hears, word for word, over the routes a client uses."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
import soxr
import websockets

from ..conftest import AppFactory, load_speech, openai_client, running
from .conftest import serve_live

pytestmark = pytest.mark.engine

SENTENCES = [
    "Hello world, this is a test.",
    "The quick brown fox jumps over the lazy dog.",
    "Please call Stella and ask her to bring these things with her from the store.",
]


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()


async def spoken(client: Any, text: str) -> bytes:
    """The text as a WAV, spoken by the server's Piper voice."""
    resp = await client.post("/v1/audio/speech", json={"model": "default", "input": text, "response_format": "wav"})
    assert resp.status_code == 200, resp.text
    return bytes(resp.content)


@pytest.mark.parametrize("sentence", SENTENCES)
async def test_piper_speech_comes_back_word_for_word_through_the_openai_sdk(
    app_factory: AppFactory, speech_root: Path, sentence: str,
) -> None:
    async with running(app_factory(load_speech(speech_root))) as client:
        wav = await spoken(client, sentence)
        result = await openai_client(client).audio.transcriptions.create(model="default",
                                                                       file=("said.wav", wav, "audio/wav"))
        assert words(result.text) == words(sentence)


async def test_every_speech_format_decodes_to_the_same_length(app_factory: AppFactory, speech_root: Path) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    async with running(app_factory(load_speech(speech_root))) as client:
        lengths = {}
        for fmt in ("wav", "flac", "mp3", "opus", "aac"):
            resp = await client.post("/v1/audio/speech", json={"model": "default", "input": text, "response_format": fmt})
            assert resp.status_code == 200, (fmt, resp.text)
            lengths[fmt] = decoded_seconds(resp.content, fmt)
        pcm = await client.post("/v1/audio/speech", json={"model": "default", "input": text, "response_format": "pcm"})
        lengths["pcm"] = len(pcm.content) / 2 / 24000
    assert 2.0 < lengths["wav"] < 4.5
    for fmt, seconds in lengths.items():
        assert abs(seconds - lengths["wav"]) < 0.15, (fmt, lengths)


def decoded_seconds(data: bytes, fmt: str) -> float:
    if fmt in ("wav", "flac"):
        if fmt == "wav":  # the streamed header says "length unknown": count the bytes after it
            return (len(data) - 44) / 2 / 24000
        samples, rate = sf.read(io.BytesIO(data))
        return len(samples) / rate
    import av

    with av.open(io.BytesIO(data)) as container:
        total = sum(frame.samples for frame in container.decode(audio=0))
        return total / container.streams.audio[0].sample_rate


async def test_a_spoken_turn_round_trips_speech_to_speech_word_for_word(
    app_factory: AppFactory, speech_root: Path,
) -> None:
    """Piper's speech at real time into /v1/voice -> the exact transcript -> the echo LLM -> the
    answer spoken by Piper -> that audio, heard by the same Moonshine, gives the words back."""
    sentence = SENTENCES[2]
    async with serve_live(app_factory(load_speech(speech_root))) as live:
        async with httpx.AsyncClient(base_url=live.http_url, timeout=30) as client:
            wav = await spoken(client, sentence)
        samples, rate = _wav(wav)
        pcm16k = (soxr.resample(samples, rate, 16000) * 32767).astype("<i2").tobytes()
        async with websockets.connect(live.url, max_size=1 << 24) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            silence = bytes(640)
            stream = pcm16k + silence * 60  # then 1.2 s of silence: the turn ends
            for i in range(0, len(stream), 640):
                await ws.send(stream[i : i + 640])
                await asyncio.sleep(0.02)
            events: list[dict[str, Any]] = []
            audio = b""
            while not any(e["type"] == "response.done" for e in events):
                message = await asyncio.wait_for(ws.recv(), 20)
                if isinstance(message, bytes):
                    audio += message
                else:
                    events.append(json.loads(message))
        kinds = [e["type"] for e in events]
        assert kinds.index("speech.started") < kinds.index("speech.stopped") < kinds.index("transcript.final")
        final = next(e for e in events if e["type"] == "transcript.final")
        assert words(final["text"]) == words(sentence)
        done = next(e for e in events if e["type"] == "response.done")
        assert words(done["text"]) == words(sentence)  # the echo LLM, all of it spoken
        # the answer's audio (24 kHz PCM16), heard by the same recognizer
        answer = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768
        heard = await live.registry.stt.transcribe(soxr.resample(answer, 24000, 16000), 16000)
        assert words(heard) == words(sentence)


def _wav(data: bytes) -> tuple[np.ndarray, int]:
    """A streamed WAV (its header says 'length unknown'): the PCM16 after the 44-byte header."""
    rate = int.from_bytes(data[24:28], "little")
    return np.frombuffer(data[44:], dtype="<i2").astype(np.float32) / 32768, rate


async def test_two_sessions_at_once_each_hear_their_own_sentence(app_factory: AppFactory, speech_root: Path) -> None:
    async with serve_live(app_factory(load_speech(speech_root))) as live:
        async with httpx.AsyncClient(base_url=live.http_url, timeout=30) as client:
            waves = [_wav(await spoken(client, s)) for s in SENTENCES[:2]]

        async def session(samples: np.ndarray, rate: int) -> str:
            pcm = (soxr.resample(samples, rate, 16000) * 32767).astype("<i2").tobytes() + bytes(640 * 60)
            async with websockets.connect(live.url, max_size=1 << 24) as ws:
                await ws.recv()
                for i in range(0, len(pcm), 640):
                    await ws.send(pcm[i : i + 640])
                    await asyncio.sleep(0.02)
                while True:
                    message = await asyncio.wait_for(ws.recv(), 20)
                    if isinstance(message, str) and json.loads(message)["type"] == "transcript.final":
                        return str(json.loads(message)["text"])

        heard = await asyncio.gather(*(session(samples, rate) for samples, rate in waves))
    assert [words(h) for h in heard] == [words(s) for s in SENTENCES[:2]]


async def test_a_preemptive_turn_with_real_speech_is_released_and_heard_word_for_word(
    app_factory: AppFactory, speech_root: Path,
) -> None:
    """Moonshine decodes the turn at the pause; nothing is said after it, so the final is that
    text and the answer started at the pause is the one that goes out."""
    sentence = SENTENCES[1]
    settings = load_speech(speech_root, {"MONOLITH_VOICE__PREEMPTIVE": "true"})
    async with serve_live(app_factory(settings)) as live:
        async with httpx.AsyncClient(base_url=live.http_url, timeout=30) as client:
            samples, rate = _wav(await spoken(client, sentence))
        pcm16k = (soxr.resample(samples, rate, 16000) * 32767).astype("<i2").tobytes()
        async with websockets.connect(live.url, max_size=1 << 24) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
            stream = pcm16k + bytes(640) * 60
            for i in range(0, len(stream), 640):
                await ws.send(stream[i : i + 640])
                await asyncio.sleep(0.02)
            events: list[dict[str, Any]] = []
            while not any(e["type"] == "turn.metrics" for e in events):
                message = await asyncio.wait_for(ws.recv(), 20)
                if isinstance(message, str):
                    events.append(json.loads(message))
    metrics = next(e for e in events if e["type"] == "turn.metrics")
    done = next(e for e in events if e["type"] == "response.done")
    assert metrics["preemptive"] is True
    assert {e["response_id"] for e in events if "response_id" in e} == {done["response_id"]}
    assert words(done["text"]) == words(sentence)
