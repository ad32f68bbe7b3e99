"""`POST /v1/audio/speech`, OpenAI-compatible: text in, audio streamed out as it is rendered.

The input is cut into sentence-sized chunks (the voice pipeline's chunker); each chunk waits
its turn on the TTS device like a voice session's (the first one with first-chunk priority),
and its audio is encoded and sent as soon as it is rendered. `pcm` is 16-bit little-endian mono
at 24 kHz, as OpenAI's is; the other formats use `[tts] output_sample_rate`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from monolith.api.audio_output import FORMATS, Encoder, encoder_for
from monolith.api.models import resolve_model
from monolith.api.requests import read_json
from monolith.config import Settings
from monolith.errors import InvalidRequest
from monolith.logs import request_id_var
from monolith.registry import Registry
from monolith.voice.chunking import SentenceChunker

PCM_RATE = 24000  # OpenAI's `pcm` format


class SpeechRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")  # `instructions`, `stream_format`: not used
    model: str
    input: str
    voice: str = "default"
    response_format: str = "mp3"  # checked by encoder_for, with the list in the message
    speed: float = Field(1.0, ge=0.25, le=4.0)


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
    if body.speed != 1.0:
        raise InvalidRequest("speed is not supported by this TTS engine (Fish Speech has no rate control); "
                             "leave it at 1.0", param="speed")
    rate = PCM_RATE if body.response_format == "pcm" else settings.tts.output_sample_rate
    encoder = encoder_for(body.response_format, rate)
    pieces = chunks_of(text, settings)
    request_id = request_id_var.get() or "speech"
    stream = _audio(registry, encoder, pieces, body.voice, rate, request_id)
    return StreamingResponse(stream, media_type=FORMATS[body.response_format])


async def _audio(
    registry: Registry, encoder: Encoder, pieces: list[str], voice: str, rate: int, request_id: str
) -> AsyncIterator[bytes]:
    header = encoder.start()
    if header:
        yield header
    for i, piece in enumerate(pieces):
        async for pcm in registry.tts.stream_pcm16(
            piece, voice=voice, request_id=f"{request_id}-{i}", sample_rate=rate, first_in_response=i == 0,
        ):
            data = await asyncio.to_thread(encoder.encode, pcm)
            if data:
                yield data
    tail = await asyncio.to_thread(encoder.finish)
    if tail:
        yield tail


routes = [Route("/v1/audio/speech", create_speech, methods=["POST"])]
