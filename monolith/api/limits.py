"""Bounds on what a client can make the server hold: body sizes before a byte is read, body
pieces that must keep coming, headers that must arrive, connections that may be open.

- A `Content-Length` over the route's limit is answered 413 at once (the body is never read);
  a chunked body is cut off with 413 as soon as it passes the limit.
- Each piece of a body must arrive within `server.body_timeout_s` (408 otherwise), so a client
  that sends a few bytes a minute does not hold a request open.
- `HeaderDeadlineProtocol` (uvicorn's h11 protocol) closes a connection whose request headers
  have not all arrived within `server.header_timeout_s`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from monolith import metrics
from monolith.config import Settings
from monolith.errors import MonolithError, PayloadTooLarge

UPLOAD_PATHS = ("/v1/audio/transcriptions",)  # multipart audio: the STT upload limit applies
MULTIPART_SLACK = 64 * 1024  # form boundaries and fields around the file


class RequestTimeout(MonolithError):
    status = 408
    type = "invalid_request_error"


def body_limit(settings: Settings, path: str) -> tuple[int, str]:
    """(bytes, the limit in words with its setting) for a route."""
    if path in UPLOAD_PATHS:
        mb = settings.stt.max_upload_mb
        return int(mb * 1024 * 1024) + MULTIPART_SLACK, f"uploads are at most {mb:g} MB (stt.max_upload_mb); this one is larger than {mb:g} MB"
    mb = settings.server.max_body_mb
    return int(mb * 1024 * 1024), f"request bodies are at most {mb:g} MB (server.max_body_mb)"


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, words = body_limit(self.settings, scope.get("path", ""))
        length = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if length is not None and length.isdigit() and int(length) > limit:
            await _reject(send, PayloadTooLarge(f"{words}: Content-Length is {int(length)} bytes",
                                                code="body_too_large"))
            return
        received = 0
        timeout = self.settings.server.body_timeout_s

        async def bounded_receive() -> Message:
            nonlocal received
            try:
                message = await asyncio.wait_for(receive(), timeout)
            except TimeoutError:
                raise RequestTimeout(f"no part of the request body arrived for {timeout:g} s",
                                     code="body_timeout") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"{words}: the body went past {limit} bytes", code="body_too_large")
            return message

        await self.app(scope, bounded_receive, send)


async def _reject(send: Send, error: MonolithError) -> None:
    metrics.ERRORS.labels(error.type).inc()
    await send({"type": "http.response.start", "status": error.status,
                "headers": [(b"content-type", b"application/json"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": json.dumps(error.to_dict()).encode()})


class HeaderDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, plus: a connection whose request headers are not complete within
    `header_timeout_s` of its first byte (or of its opening) is closed. uvicorn itself waits
    forever for a request that never finishes its headers."""

    header_timeout_s = 10.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if self._header_deadline is None:
            self._header_deadline = self.loop.call_later(self.header_timeout_s, self._too_slow)

    def _disarm(self) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            self._arm()  # a request has begun (or a keep-alive connection woke up): headers due
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        self._header_deadline = None
        if self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            metrics.SLOW_CLIENTS_DROPPED.inc()
            self.transport.close()


def header_deadline_protocol(timeout_s: float) -> type[HeaderDeadlineProtocol]:
    return type("HeaderDeadlineProtocol", (HeaderDeadlineProtocol,), {"header_timeout_s": timeout_s})
