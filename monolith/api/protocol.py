"""Client -> server messages of the voice protocol, validated (docs/protocol.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from monolith.errors import InvalidRequest


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


ClientMessage = Annotated[SessionUpdate | InputText | ResponseCancel | SessionClose, Field(discriminator="type")]
_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
KNOWN_TYPES = ("session.update", "input_text", "response.cancel", "session.close")


def parse_client_message(text: str) -> SessionUpdate | InputText | ResponseCancel | SessionClose:
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"not valid JSON: {exc.msg} at position {exc.pos}", code="invalid_json") from None
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
