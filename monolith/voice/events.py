"""Server -> client events of the voice protocol (docs/protocol.md), built in one place."""

from __future__ import annotations

from typing import Any

PROTOCOL = "monolith.voice.v1"
Event = dict[str, Any]


def event(type_: str, **fields: Any) -> Event:
    return {"type": type_, **fields}


def error(code: str, message: str) -> Event:
    return {"type": "error", "error": {"code": code, "message": message}}
