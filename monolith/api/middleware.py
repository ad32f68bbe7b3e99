"""Request id, access log, request metrics, and the last-resort JSON 500 (never a traceback)."""

from __future__ import annotations

import json
import logging
import re
import time

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monolith import metrics
from monolith.api.cancellation import CLIENT_CLOSED_REQUEST
from monolith.api.errors import report
from monolith.logs import new_request_id, request_id_var

log = logging.getLogger("monolith.access")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _request_id_from(scope: Scope) -> str:
    for key, value in scope.get("headers", []):
        if key == b"x-request-id":
            candidate = str(value.decode("latin-1"))
            if _VALID_ID.match(candidate):
                return candidate
    return new_request_id()


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = _request_id_from(scope)
        token = request_id_var.set(request_id)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 0
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.accept"):
                status = message.get("status", 101)
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except ClientDisconnect:
            status = status or CLIENT_CLOSED_REQUEST  # the client hung up mid-body: not a server error
        except Exception as exc:
            error = report(exc, where=f"unhandled in {scope.get('path')}")
            if status:
                raise  # the response already started; nothing clean can be sent now
            if scope["type"] == "http":
                status = error.status
                body = json.dumps(error.to_dict())
                await send_with_id(
                    {"type": "http.response.start", "status": status,
                     "headers": [(b"content-type", b"application/json")]}
                )
                await send_with_id({"type": "http.response.body", "body": body.encode()})
        finally:
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            if scope["type"] == "http":
                metrics.HTTP_REQUESTS.labels(scope["method"], route_path, str(status)).inc()
                log.info(
                    "%s %s %s", scope["method"], scope["path"], status,
                    extra={"method": scope["method"], "path": scope["path"], "status": status,
                           "duration_ms": round((time.perf_counter() - start) * 1000, 2)},
                )
            request_id_var.reset(token)
