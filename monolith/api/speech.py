"""`POST /v1/audio/speech`, OpenAI-compatible: text in, audio streamed out as it is rendered.

The input is cut into sentence-sized chunks (the voice pipeline's chunker); each chunk waits
its turn on the TTS device like a voice session's (the first one with first-chunk priority),
and its audio is encoded and sent as soon as it is rendered. `pcm` is 16-bit little-endian mono
at 24 kHz, as OpenAI's is; the other formats use `[tts] output_sample_rate`.

`speed` (0.25 to 4.0) is the engine's own where it has rate control, else a pitch-keeping time
stretch (providers/tts.py). `stream_format=sse` sends the same audio as server-sent events:
`speech.audio.delta` (base64 of the encoded bytes), then `speech.audio.done` with `usage`
(`input_tokens` counts the input's characters: these engines have no token count to give)."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from monolith.api.audio_output import FORMATS, Encoder, encoder_for
from monolith.api.cancellation import with_cancellation
from monolith.api.models import resolve_model
from monolith.api.requests import read_json
from monolith.api.sse import sse_response
from monolith.config import Settings
from monolith.errors import InvalidRequest
from monolith.logs import request_id_var
from monolith.registry import Registry
from monolith.voice.chunking import SentenceChunker

PCM_RATE = 24000  # OpenAI's `pcm` format


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `instructions`: not used
    model: str
    input: str
    voice: str = "default"
    response_format: str = "mp3"  # checked by encoder_for, with the list in the message
    speed: float = Field(1.0, ge=0.25, le=4.0)
    stream_format: Literal["audio", "sse"] = "audio"


def chunks_of(text: str, settings: Settings) -> list[str]:
    voice = settings.voice
    return SentenceChunker(voice.chunk_min_chars, voice.chunk_max_chars, voice.first_chunk_max_chars).split(text)


async def create_speech(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    settings: Settings = request.app.state.settings
    body = await read_json(request, SpeechRequest)
    resolve_model(registry, "tts", body.model)
    text = body.input.strip()
    if not text:
        raise InvalidRequest("input is empty", param="input")
    if len(text) > settings.tts.max_input_chars:
        raise InvalidRequest(f"input is {len(text)} characters; at most {settings.tts.max_input_chars} "
                             "(tts.max_input_chars)", param="input")
    voices = registry.tts.voices()
    if body.voice not in voices:
        raise InvalidRequest(f"unknown voice {body.voice!r}; available: {', '.join(voices)}",
                             code="unknown_voice", param="voice")
    rate = PCM_RATE if body.response_format == "pcm" else settings.tts.output_sample_rate
    encoder = encoder_for(body.response_format, rate)
    pieces = chunks_of(text, settings)
    request_id = request_id_var.get() or "speech"
    stream = _audio(registry, encoder, pieces, body.voice, rate, body.speed, request_id)
    # The first audio is awaited here: an engine that fails is still an HTTP error, and the
    # X-Monolith-Provider header can name who rendered it.
    first = await _first(stream)
    if body.stream_format == "sse":
        return sse_response(_events(first, stream, len(text)))
    return StreamingResponse(_chain(first, stream), media_type=FORMATS[body.response_format])


async def _audio(
    registry: Registry, encoder: Encoder, pieces: list[str], voice: str, rate: int, speed: float, request_id: str,
) -> AsyncIterator[bytes]:
    header = encoder.start()
    for i, piece in enumerate(pieces):
        async for pcm in registry.tts.stream_pcm16(
            piece, voice=voice, request_id=f"{request_id}-{i}", sample_rate=rate, first_in_response=i == 0,
            speed=speed,
        ):
            data = header + await asyncio.to_thread(encoder.encode, pcm)
            header = b""
            if data:
                yield data
    tail = header + await asyncio.to_thread(encoder.finish)
    if tail:
        yield tail


async def _first(stream: AsyncIterator[bytes]) -> bytes | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise


async def _chain(first: bytes | None, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    try:
        if first is not None:
            yield first
        async for data in rest:
            yield data
    finally:
        await rest.aclose()  # type: ignore[attr-defined]  # the client left: rendering stops


async def _events(first: bytes | None, rest: AsyncIterator[bytes], characters: int) -> AsyncIterator[dict[str, Any]]:
    def delta(data: bytes) -> dict[str, Any]:
        return {"type": "speech.audio.delta", "audio": base64.b64encode(data).decode("ascii")}

    try:
        if first is not None:
            yield delta(first)
        async for data in rest:
            yield delta(data)
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
    yield {"type": "speech.audio.done",
           "usage": {"input_tokens": characters, "output_tokens": 0, "total_tokens": characters}}


routes = [Route("/v1/audio/speech", with_cancellation(create_speech), methods=["POST"])]
