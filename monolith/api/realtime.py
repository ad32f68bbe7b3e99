"""`GET /v1/realtime`: OpenAI's Realtime API (GA) over the same voice session as `/v1/voice`.

Clients: the openai SDK (`client.realtime.connect(model=...)`), Pipecat's and LiveKit's OpenAI
Realtime services, browser pages (the one at `/` among them). GA event names only; a client that
speaks the retired beta API gets errors naming the events it sent. Unsupported fields and events
are answered with an `error` naming them, never ignored."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from monolith.api.errors import ws_error
from monolith.api.json_input import parse_json
from monolith.api.realtime_protocol import (
    TRANSCRIPTION_MODELS,
    RealtimeEncoder,
    ServerVad,
    decode_audio_append,
    deep_merge,
    options_from_session,
    parse_tools,
)
from monolith.api.voice_ws import CLOSE_GOING_AWAY, make_session, refuse_if_unavailable, run_session
from monolith.config import Settings
from monolith.errors import InvalidRequest, MonolithError
from monolith.registry import Registry
from monolith.voice.events import ServerEvent, SessionEnded
from monolith.voice.hub import SessionHub
from monolith.voice.session import VoiceSession
from monolith.voice.tools import ResponseTools

log = logging.getLogger(__name__)
RATE = 24000
REALTIME_MODELS = ("gpt-realtime", "gpt-realtime-mini", "gpt-4o-realtime-preview", "gpt-4o-mini-realtime-preview")


class RealtimeSink:
    def __init__(self, ws: WebSocket, encoder: RealtimeEncoder) -> None:
        self.ws, self.encoder = ws, encoder
        self.lock = asyncio.Lock()
        self.gone = False

    async def send(self, events: list[dict[str, Any]]) -> None:
        async with self.lock:
            for event in events:
                if self.gone:
                    return
                try:
                    await self.ws.send_text(json.dumps(event, ensure_ascii=False))
                except (WebSocketDisconnect, RuntimeError, OSError):
                    self.gone = True

    async def emit(self, event: ServerEvent) -> None:
        if isinstance(event, SessionEnded):
            async with self.lock:
                if not self.gone:
                    self.gone = True
                    with contextlib.suppress(Exception):
                        await self.ws.close(CLOSE_GOING_AWAY, reason=event.reason)
            return
        await self.send(self.encoder.encode(event))

    def error(self, exc: Exception, client_event_id: str | None = None) -> dict[str, Any]:
        body = ws_error(exc)["error"]
        return self.encoder.event("error", error={**body, "event_id": client_event_id})


def _model(ws: WebSocket, registry: Registry) -> str:
    """`?model=`: this server's LLM, named by its id, `default`, or one of OpenAI's realtime names."""
    served = registry.slots["llm"].served_id
    asked = ws.query_params.get("model") or "default"
    if asked in ("default", served) or asked.startswith(REALTIME_MODELS):
        return asked
    raise InvalidRequest(f"model {asked!r} is not served here; use {served!r}, default, or gpt-realtime",
                         code="model_not_found", param="model")


async def realtime_endpoint(ws: WebSocket) -> None:
    hub: SessionHub = ws.app.state.voice
    settings: Settings = ws.app.state.settings
    registry: Registry = ws.app.state.registry
    # Browsers offer "realtime" (and the key); Chrome fails the connection unless one is chosen.
    await ws.accept(subprotocol="realtime" if "realtime" in ws.scope.get("subprotocols", []) else None)
    vad = ServerVad(settings.stt.vad_threshold, int(settings.stt.vad_silence_ms))
    encoder = RealtimeEncoder(model="default", vad=vad, transcription_model=TRANSCRIPTION_MODELS[0])
    sink = RealtimeSink(ws, encoder)
    if await refuse_if_unavailable(ws, hub, lambda exc: sink.error(exc)):
        return
    try:
        encoder.model = _model(ws, registry)
    except MonolithError as exc:
        await sink.send([sink.error(exc)])
        await ws.close(1008, reason="model not served")
        return
    session = make_session(ws, sink, input_rate=RATE, output_rate=RATE)
    await run_session(ws, hub, session, lambda exc: sink.send([sink.error(exc)]),
                      lambda: _receive(ws, session, sink, settings), lambda: sink.gone)


async def _receive(ws: WebSocket, session: VoiceSession, sink: RealtimeSink, settings: Settings) -> None:
    idle = settings.voice.idle_timeout_s
    while True:
        try:
            message = await asyncio.wait_for(ws.receive(), timeout=idle)
        except TimeoutError:
            if session.busy:
                continue
            await sink.send([sink.error(InvalidRequest(f"no input for {idle:g} s", code="idle_timeout"))])
            await ws.close(1000, reason="idle timeout")
            return
        if message["type"] == "websocket.disconnect":
            return
        event_id = None
        try:
            if message.get("text") is None:
                raise InvalidRequest("Realtime events are JSON text frames (audio goes base64 in "
                                     "input_audio_buffer.append)", code="invalid_message")
            event = parse_json(message["text"])
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                raise InvalidRequest("each event is a JSON object with a string `type`", code="invalid_message")
            event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
            await _dispatch(event, session, sink)
        except Exception as exc:  # a bad event is answered; the session goes on
            await sink.send([sink.error(exc, event_id)])


async def _dispatch(event: dict[str, Any], session: VoiceSession, sink: RealtimeSink) -> None:
    kind = event["type"]
    encoder = sink.encoder
    if kind == "session.update":
        change = event.get("session")
        if not isinstance(change, dict):
            raise InvalidRequest("session.update needs a `session` object", code="invalid_message", param="session")
        await session.update(options_from_session(deep_merge(encoder.session(), change), vad=encoder.vad))
    elif kind == "input_audio_buffer.append":
        await session.on_audio(decode_audio_append(event.get("audio")))
    elif kind == "input_audio_buffer.commit":
        if session.options.turn_detection:
            assert session.stream is not None
            await session.stream.flush()  # server VAD: the turn ends now; its final starts the answer
        else:
            await session.commit_audio()
    elif kind == "input_audio_buffer.clear":
        await session.clear_audio()
        await sink.send([encoder.event("input_audio_buffer.cleared")])
    elif kind == "conversation.item.create":
        await _create_item(event.get("item"), session, sink)
    elif kind == "response.create":
        await session.create_response(_response_tools(event.get("response") or {}, session))
    elif kind == "response.cancel":
        if not await session.cancel_response("client_cancel"):
            raise InvalidRequest("there is no response to cancel", code="response_cancel_not_active")
    elif kind == "conversation.item.truncate":
        item_id, audio_end_ms = event.get("item_id"), event.get("audio_end_ms")
        if item_id not in encoder.items or not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise InvalidRequest("conversation.item.truncate needs the item_id of an assistant answer and "
                                 "audio_end_ms (a whole number of milliseconds, 0 or more)", code="invalid_value",
                                 param="item_id" if item_id not in encoder.items else "audio_end_ms")
        await session.truncate(encoder.items[item_id], audio_end_ms)
        await sink.send([encoder.event("conversation.item.truncated", item_id=item_id,
                                       content_index=int(event.get("content_index") or 0), audio_end_ms=audio_end_ms)])
    else:
        raise InvalidRequest(f"event type {kind!r} is not supported by this server", code="unknown_event", param="type")


def _response_tools(response: Any, session: VoiceSession) -> ResponseTools | None:
    """`response.create`'s own `tools` / `tool_choice` for this response (None: the session's)."""
    if not isinstance(response, dict):
        raise InvalidRequest("response.create: response is an object", code="invalid_value", param="response")
    extra = sorted(set(response) - {"metadata", "tools", "tool_choice"})
    if extra:
        raise InvalidRequest(f"response.create: response.{extra[0]} is not supported (set it with session.update)",
                             code="unsupported_value", param=f"response.{extra[0]}")
    if "tools" not in response and "tool_choice" not in response:
        return None
    tools, choice = parse_tools(response.get("tools", session.options.tools),
                                response.get("tool_choice", session.options.tool_choice), "response")
    return ResponseTools(tuple(tools), choice, session.options.parallel_tool_calls)


async def _create_item(item: Any, session: VoiceSession, sink: RealtimeSink) -> None:
    if isinstance(item, dict) and item.get("type") == "function_call_output":
        await _function_output(item, session, sink)
        return
    if not isinstance(item, dict) or item.get("type") != "message" or item.get("role") != "user":
        raise InvalidRequest("conversation.item.create: only user messages (type message, role user) and function "
                             "call outputs (type function_call_output) are supported", code="unsupported_value",
                             param="item")
    parts = item.get("content") or []
    texts = [p.get("text") for p in parts if isinstance(p, dict) and p.get("type") == "input_text"]
    if not texts or len(texts) != len(parts) or not all(isinstance(t, str) for t in texts):
        raise InvalidRequest("conversation.item.create: a user message's content is input_text parts",
                             code="unsupported_value", param="item.content")
    text = " ".join(str(t) for t in texts)
    session.add_user_text(text)
    given = item.get("id")
    item_id = given if isinstance(given, str) else f"item_{uuid.uuid4().hex[:20]}"
    await sink.send(sink.encoder.user_message(item_id, text, typed=True))


async def _function_output(item: dict[str, Any], session: VoiceSession, sink: RealtimeSink) -> None:
    """A tool's result: into the history after its call; the answer waits for `response.create`
    (as OpenAI's API does)."""
    call_id, output = item.get("call_id"), item.get("output")
    for name, value in (("call_id", call_id), ("output", output)):
        if not isinstance(value, str):
            raise InvalidRequest(f"conversation.item.create: a function_call_output needs item.{name} (a string)",
                                 code="invalid_value", param=f"item.{name}")
    assert isinstance(call_id, str) and isinstance(output, str)
    try:
        await session.add_tool_result(call_id, output)
    except InvalidRequest as exc:
        exc.param = f"item.{exc.param}" if exc.param else "item"
        raise
    given = item.get("id")
    item_id = given if isinstance(given, str) else f"item_{uuid.uuid4().hex[:20]}"
    await sink.send(sink.encoder.function_output(item_id, call_id, output))


routes = [WebSocketRoute("/v1/realtime", realtime_endpoint)]
