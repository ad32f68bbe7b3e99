"""`GET /v1/voice`: the WebSocket transport of a voice session (monolith.voice.v1). It only
translates: frames in -> session calls; session events out -> `voice_protocol.to_wire`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from monolith.api.voice_protocol import (
    PROTOCOL,
    InputText,
    ResponseCancel,
    ResponseTruncate,
    SessionClose,
    SessionUpdate,
    ToolResult,
    error_event,
    options_update,
    parse_client_message,
    to_wire,
)
from monolith.config import Settings
from monolith.errors import InvalidRequest, MonolithError, Unavailable
from monolith.providers.llm import SamplingOptions
from monolith.registry import Registry
from monolith.voice.events import ServerEvent, SessionEnded
from monolith.voice.hub import SessionHub
from monolith.voice.session import OutputSink, VoiceSession

log = logging.getLogger(__name__)
CLOSE_TRY_AGAIN_LATER = 1013  # RFC 6455: the server is overloaded
CLOSE_GOING_AWAY = 1001  # RFC 6455: the server is going down


def accepted_subprotocol(ws: WebSocket, own: str) -> str | None:
    """The subprotocol to accept: ours if the client offered it (browsers fail the connection when
    they offered protocols and none is chosen). The API-key one is never echoed back."""
    offered = ws.scope.get("subprotocols", [])
    return own if own in offered else None


async def refuse_if_unavailable(
    ws: WebSocket, hub: SessionHub, encode: Callable[[Exception], dict[str, Any]] | None = None,
) -> bool:
    """Full, or draining: an error event (in the transport's own shape) and close 1013, so a
    client or balancer tries another replica. True when refused."""
    reason = hub.refusal()
    if reason is None:
        return False
    hub.refuse(reason)
    message = (f"the server holds {hub.max_sessions} sessions already" if reason == "full"
               else "the server is shutting down")
    error = Unavailable(message, code="too_many_sessions" if reason == "full" else "draining")
    await ws.send_json((encode or error_event)(error))
    await ws.close(CLOSE_TRY_AGAIN_LATER, reason="too many sessions" if reason == "full" else "shutting down")
    return True


class WebSocketSink:
    """Serialises sends from the session's tasks; a vanished client is not an error for them."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.lock = asyncio.Lock()
        self.gone = False

    async def send(self, message: dict[str, object] | bytes) -> None:
        if self.gone:
            return
        frame = {"type": "websocket.send", "bytes": message} if isinstance(message, bytes) else \
            {"type": "websocket.send", "text": json.dumps(message, ensure_ascii=False)}
        async with self.lock:
            try:
                await self.ws.send(frame)  # type: ignore[arg-type]
            except (WebSocketDisconnect, RuntimeError, OSError):
                self.gone = True

    async def emit(self, event: ServerEvent) -> None:
        if isinstance(event, SessionEnded):
            await self.close(CLOSE_GOING_AWAY, event.reason)
            return
        message = to_wire(event)
        if message is not None:
            await self.send(message)

    async def close(self, code: int, reason: str) -> None:
        async with self.lock:
            if not self.gone:
                self.gone = True
                with contextlib.suppress(Exception):
                    await self.ws.close(code, reason=reason)


def make_session(ws: WebSocket, sink: OutputSink, *, input_rate: int | None = None,
                 output_rate: int | None = None) -> VoiceSession:
    """A session over the app's providers, for any voice transport (which may fix the audio rates
    its protocol speaks)."""
    settings: Settings = ws.app.state.settings
    registry: Registry = ws.app.state.registry
    llm = settings.llm
    return VoiceSession(
        session_id=uuid.uuid4().hex[:16],
        config=settings.voice,
        llm=registry.llm, stt=registry.stt, tts=registry.tts,
        sink=sink,
        output_sample_rate=output_rate or settings.tts.output_sample_rate,
        input_sample_rate=input_rate,
        sampling=SamplingOptions(max_tokens=llm.max_tokens, temperature=llm.temperature, top_p=llm.top_p),
        default_voice=settings.tts.voice,
        retriever=getattr(ws.app.state, "rag", None),
    )


async def run_session(
    ws: WebSocket, hub: SessionHub, session: VoiceSession, send_error: Callable[[MonolithError], Awaitable[Any]],
    receive: Callable[[], Awaitable[None]], gone: Callable[[], bool],
) -> None:
    """A voice session's life on its WebSocket, for every transport: counted in the hub, started
    (a failure is the client's error event and close 1011), fed until the client or the server
    ends it, then closed and forgotten, and the socket closed if it is still open."""
    hub.add(session)
    try:
        try:
            await session.start()
        except MonolithError as exc:
            await send_error(exc)
            await ws.close(1011, reason="session could not start")
            return
        await receive()
    finally:
        await session.close()
        hub.remove(session)
        if ws.application_state == WebSocketState.CONNECTED and not gone():
            with contextlib.suppress(Exception):
                await ws.close()


async def voice_endpoint(ws: WebSocket) -> None:
    hub: SessionHub = ws.app.state.voice
    settings: Settings = ws.app.state.settings
    await ws.accept(subprotocol=accepted_subprotocol(ws, PROTOCOL))
    if await refuse_if_unavailable(ws, hub):
        return
    sink = WebSocketSink(ws)
    session = make_session(ws, sink)
    await run_session(ws, hub, session, lambda exc: sink.send(error_event(exc)),
                      lambda: _receive_loop(ws, session, sink, settings), lambda: sink.gone)


async def _receive_loop(ws: WebSocket, session: VoiceSession, sink: WebSocketSink, settings: Settings) -> None:
    voice = settings.voice
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), timeout=voice.idle_timeout_s)
        except TimeoutError:
            if session.busy:
                continue  # answering is not idling
            await sink.send(error_event(InvalidRequest(f"no input for {voice.idle_timeout_s:g} s", code="idle_timeout")))
            await ws.close(1000, reason="idle timeout")
            return
        if message["type"] == "websocket.disconnect":
            return
        try:
            if message.get("bytes") is not None:
                data: bytes = message["bytes"]
                if len(data) > voice.max_frame_bytes:
                    raise InvalidRequest(
                        f"audio frame of {len(data)} bytes is over the {voice.max_frame_bytes}-byte limit",
                        code="frame_too_large",
                    )
                await session.on_audio(data)
            elif message.get("text") is not None:
                if await _dispatch(session, sink, message["text"]) == "close":
                    await ws.close(1000, reason="session.close")
                    return
        except Exception as exc:  # a bad message is answered; the session goes on
            await sink.send(error_event(exc))


async def _dispatch(session: VoiceSession, sink: WebSocketSink, text: str) -> str | None:
    msg = parse_client_message(text)
    if isinstance(msg, SessionUpdate):
        await session.update(options_update(msg.session))
    elif isinstance(msg, InputText):
        await session.on_text(msg.text)
    elif isinstance(msg, ResponseCancel):
        await session.cancel_response("client_cancel")
    elif isinstance(msg, ResponseTruncate):
        heard = await session.truncate(msg.response_id, msg.audio_end_ms)
        await sink.send({"type": "response.truncated", "response_id": msg.response_id,
                         "audio_end_ms": msg.audio_end_ms, "spoken_text": heard})
    elif isinstance(msg, ToolResult):
        await session.add_tool_result(msg.call_id, msg.output, respond=msg.respond)
    elif isinstance(msg, SessionClose):
        return "close"
    return None


routes = [WebSocketRoute("/v1/voice", voice_endpoint)]
