"""`POST /v1/audio/transcriptions`, OpenAI-compatible: a multipart upload in, text out.

`response_format` json (default), text or verbose_json (every segment field OpenAI's has, and
`words` for `timestamp_granularities[]=word`: api/verbose_json.py says how each is computed);
`stream=true` answers with server-sent events `transcript.text.delta` per recognized utterance,
then `transcript.text.done`, as the OpenAI API does. `language`, `prompt` and `temperature` are
accepted and not used."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from monolith.api.audio_input import decode_audio
from monolith.api.cancellation import with_cancellation
from monolith.api.models import resolve_model
from monolith.api.sse import sse_response
from monolith.api.verbose_json import GRANULARITIES, has_word_times, verbose_body
from monolith.config import Settings
from monolith.errors import InvalidRequest, PayloadTooLarge
from monolith.registry import Registry
from monolith.text import join_texts

FORMATS = ("json", "text", "verbose_json")


async def _upload(request: Request, settings: Settings) -> tuple[bytes, dict[str, str], list[str]]:
    limit = int(settings.stt.max_upload_mb * 1024 * 1024)  # the whole body is bounded in api/limits.py
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise InvalidRequest("send the audio as multipart/form-data with a `file` field", code="invalid_content_type")
    try:
        form = await request.form(max_part_size=limit)
    except Exception as exc:  # the multipart parser's own errors (malformed body, part too big)
        raise InvalidRequest(f"could not read the multipart body: {exc}", code="invalid_multipart") from None
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidRequest("the `file` field (the audio) is missing", param="file")
    data = await upload.read()
    if len(data) > limit:
        raise PayloadTooLarge(f"upload is larger than {settings.stt.max_upload_mb:g} MB (stt.max_upload_mb)")
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    granularities = [v for key in ("timestamp_granularities[]", "timestamp_granularities")
                     for v in form.getlist(key) if isinstance(v, str)]
    return data, fields, granularities


def _granularities(given: list[str], fmt: str) -> list[str]:
    unknown = [g for g in given if g not in GRANULARITIES]
    if unknown:
        raise InvalidRequest(f"timestamp_granularities {unknown[0]!r} is not one of {', '.join(GRANULARITIES)}",
                             param="timestamp_granularities")
    if given and fmt != "verbose_json":
        raise InvalidRequest("timestamp_granularities needs response_format verbose_json",
                             param="timestamp_granularities")
    return given


async def create_transcription(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    settings: Settings = request.app.state.settings
    data, fields, asked = await _upload(request, settings)
    model = resolve_model(registry, "stt", fields.get("model"))
    fmt = fields.get("response_format", "json")
    if fmt not in FORMATS:
        raise InvalidRequest(f"response_format {fmt!r} is not supported; use one of {', '.join(FORMATS)}",
                             param="response_format")
    granularities = _granularities(asked, fmt)
    stream = fields.get("stream", "false").lower() in ("true", "1")
    # Decoding an MP3 of minutes takes a while: never on the event loop.
    samples, rate = await asyncio.to_thread(decode_audio, data, max_seconds=settings.stt.max_transcription_s,
                                            rate=settings.stt.sample_rate)
    duration = samples.size / rate
    if stream:
        return sse_response(_events(registry.stt.transcribe_stream(samples, rate)))
    segments = [s async for s in registry.stt.transcribe_segments(samples, rate)]
    text = join_texts([s.text for s in segments])
    if fmt == "text":
        return PlainTextResponse(text + "\n")
    if fmt == "json":
        return JSONResponse({"text": text})
    if "word" in granularities and not all(has_word_times(s) for s in segments):
        raise InvalidRequest(f"{model} gives no token times, so no word timestamps; ask for "
                             "timestamp_granularities[]=segment (segments have times)",
                             code="word_timestamps_unsupported", param="timestamp_granularities")
    return JSONResponse(verbose_body(segments, text=text, language=settings.voice.language, duration=duration,
                                     granularities=granularities, min_speech_s=settings.stt.vad_min_speech_ms / 1000))


async def _events(deltas: AsyncIterator[str]) -> AsyncIterator[dict[str, Any]]:
    text = ""
    try:
        async for delta in deltas:
            text += delta
            yield {"type": "transcript.text.delta", "delta": delta}
    finally:
        await deltas.aclose()  # type: ignore[attr-defined]
    yield {"type": "transcript.text.done", "text": text}


routes = [Route("/v1/audio/transcriptions", with_cancellation(create_transcription), methods=["POST"])]
