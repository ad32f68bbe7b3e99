"""The `monolith.voice.v1` wire format (docs/protocol.md): client messages in, validated;
the session's typed events out, as JSON objects or binary audio frames."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from monolith.api.errors import ws_error
from monolith.api.json_input import parse_json
from monolith.errors import InvalidRequest
from monolith.voice.events import (
    ResponseAudio,
    ResponseAudioStarted,
    ResponseCancelled,
    ResponseDone,
    ResponseFunctionCall,
    ResponseFunctionCallDelta,
    ResponseStarted,
    ResponseTextDelta,
    ServerEvent,
    SessionClosing,
    SessionCreated,
    SessionError,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptFinal,
    TranscriptPartial,
    TurnMetrics,
)
from monolith.voice.options import OptionsUpdate

PROTOCOL = "monolith.voice.v1"


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SessionUpdate(_Message):
    type: Literal["session.update"]
    session: dict[str, Any] = Field(default_factory=dict)


class InputText(_Message):
    type: Literal["input_text"]
    text: str


class ResponseCancel(_Message):
    type: Literal["response.cancel"]


class SessionClose(_Message):
    type: Literal["session.close"]


class ResponseTruncate(_Message):
    """The listener heard `audio_end_ms` of a response's audio: history keeps exactly that."""

    type: Literal["response.truncate"]
    response_id: str
    audio_end_ms: int = Field(ge=0)


class ToolResult(_Message):
    """The output of a function call the model made (`response.function_call`); `respond`: answer
    with it now (false: more results are coming; the last one says true)."""

    type: Literal["tool.result"]
    call_id: str
    output: str
    respond: bool = True


Message = SessionUpdate | InputText | ResponseCancel | SessionClose | ResponseTruncate | ToolResult
ClientMessage = Annotated[Message, Field(discriminator="type")]
_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
KNOWN_TYPES = ("session.update", "input_text", "response.cancel", "session.close", "response.truncate", "tool.result")


def parse_client_message(text: str) -> Message:
    raw = parse_json(text)
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        raise InvalidRequest("each message is a JSON object with a string `type`", code="invalid_message")
    if raw["type"] not in KNOWN_TYPES:
        raise InvalidRequest(f"unknown event type {raw['type']!r}; known: {', '.join(KNOWN_TYPES)}", code="unknown_event")
    try:
        return _adapter.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or raw["type"]
        raise InvalidRequest(f"{raw['type']}: {where}: {first['msg']}", code="invalid_message") from None


def options_update(fields: dict[str, Any]) -> OptionsUpdate:
    """`session.update`'s fields, with the protocol's error codes."""
    try:
        return OptionsUpdate.model_validate(fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) if first["loc"] else "session"
        if first["type"] == "extra_forbidden":
            raise InvalidRequest(f"session.update: unknown field {field!r}", code="unknown_field", param=field) from None
        if field.startswith("tool_choice"):
            raise InvalidRequest('session.update: tool_choice is "auto", "none", "required" or {"type": "function", '
                                 '"name": ...}', code="invalid_value", param="tool_choice") from None
        if field == "input_sample_rate":
            raise InvalidRequest("input_sample_rate must be an integer from 8000 to 48000", code="invalid_rate",
                                 param=field) from None
        raise InvalidRequest(f"session.update: {field}: {first['msg']}", code="invalid_value", param=field) from None


def error_event(exc: BaseException, response_id: str | None = None) -> dict[str, Any]:
    """`{"type": "error", "error": {type, message, code, param}}` (plus `response_id` for a turn)."""
    extra = {"response_id": response_id} if response_id else {}
    body = ws_error(exc, **extra)
    body["error"]["code"] = body["error"]["code"] or body["error"]["type"]  # v1 clients switch on the code
    return {"type": "error", **body}


def to_wire(event: ServerEvent) -> dict[str, Any] | bytes | None:
    """The message for one session event: a JSON object, bytes for a binary audio frame, or
    None for what this protocol does not send (the pieces of a function call)."""
    match event:
        case SessionCreated():
            return {"type": "session.created", "session_id": event.session_id, "protocol": PROTOCOL,
                    "input_audio_format": _pcm(event.input_sample_rate),
                    "output_audio_format": _pcm(event.output_sample_rate), "options": dict(event.options)}
        case SessionUpdated():
            return {"type": "session.updated", "options": dict(event.options)}
        case SpeechStarted():
            return {"type": "speech.started", "audio_ms": event.audio_ms}
        case SpeechStopped():
            return {"type": "speech.stopped", "audio_ms": event.audio_ms}
        case TranscriptPartial():
            return {"type": "transcript.partial", "text": event.text}
        case TranscriptFinal():
            return {"type": "transcript.final", "text": event.text}
        case ResponseStarted():
            return {"type": "response.started", "response_id": event.response_id, "user_text": event.user_text}
        case ResponseTextDelta():
            return {"type": "response.text.delta", "response_id": event.response_id, "delta": event.delta}
        case ResponseAudioStarted():
            return {"type": "response.audio.started", "response_id": event.response_id, "sample_rate": event.sample_rate}
        case ResponseAudio():
            return event.pcm
        case ResponseFunctionCallDelta():
            return None
        case ResponseFunctionCall():
            return {"type": "response.function_call", "response_id": event.response_id, "call_id": event.call_id,
                    "name": event.name, "arguments": event.arguments}
        case ResponseDone():
            sources = [{"source": p.source, "score": round(p.score, 4), "text": p.text} for p in event.sources]
            return {"type": "response.done", "response_id": event.response_id, "text": event.text, "sources": sources}
        case ResponseCancelled():
            return {"type": "response.cancelled", "response_id": event.response_id, "reason": event.reason,
                    "spoken_text": event.spoken_text}
        case TurnMetrics():
            return {"type": "turn.metrics", "response_id": event.response_id, **event.figures}
        case SessionError():
            return error_event(event.error, event.response_id)
        case SessionClosing():
            return {"type": "session.closing", "reason": event.reason, "within_s": event.within_s}
    raise TypeError(f"no monolith.voice.v1 message for {type(event).__name__}")


def _pcm(rate: int) -> dict[str, Any]:
    return {"encoding": "pcm16le", "sample_rate": rate, "channels": 1}
