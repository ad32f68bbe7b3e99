"""The one error boundary of every transport: an exception becomes an OpenAI-shaped error body
(HTTP JSON, an SSE event, or a WebSocket event), the error metric is counted once, and the
detail goes to the log, never to the client for a server failure."""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from monolith import metrics
from monolith.errors import InternalError, MonolithError

log = logging.getLogger("monolith.errors")

_HTTP_TYPES = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error"}


def as_monolith_error(exc: BaseException) -> MonolithError:
    """What the client may be told about `exc`; anything unexpected is an internal error."""
    if isinstance(exc, MonolithError):
        return exc
    return InternalError(f"{type(exc).__name__}: {exc}")


def report(exc: BaseException, *, where: str) -> MonolithError:
    """Count and log one error; return what to send."""
    error = as_monolith_error(exc)
    metrics.ERRORS.labels(error.type).inc()
    if error.exposed:
        log.info("%s: %s %s", where, error.type, error.message, extra={"error_code": error.code})
    else:
        log.error("%s: %s %s", where, error.type, error.message, extra={"error_code": error.code},
                  exc_info=exc if not isinstance(exc, MonolithError) else None)
    return error


def error_body(exc: BaseException, *, where: str) -> dict[str, Any]:
    return report(exc, where=where).to_dict()


def json_error(exc: BaseException, *, where: str = "http") -> JSONResponse:
    error = report(exc, where=where)
    return JSONResponse(error.to_dict(), status_code=error.status)


def sse_error(exc: BaseException) -> str:
    """An error inside an event stream whose headers are gone: `{"type": "error", "error": {...}}`
    (the openai SDK raises APIError on any `data` with an `error` key)."""
    return f"data: {json.dumps({'type': 'error', **error_body(exc, where='sse')}, ensure_ascii=False)}\n\n"


def ws_error(exc: BaseException, **extra: Any) -> dict[str, Any]:
    """A WebSocket `error` event's fields (the protocol adds its own envelope)."""
    return {**error_body(exc, where="websocket"), **extra}


async def monolith_error_handler(request: Request, exc: Exception) -> Response:
    return json_error(exc)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_TYPES.get(exc.status_code, "invalid_request_error" if exc.status_code < 500 else "internal_error")
    metrics.ERRORS.labels(kind).inc()
    body = {"error": {"type": kind, "message": str(exc.detail), "code": None, "param": None}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
