"""Map errors to the OpenAI-shaped JSON body: `{"error": {"type", "message", ...}}`."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from monolith import metrics
from monolith.errors import MonolithError

_HTTP_TYPES = {400: "invalid_request_error", 404: "not_found_error", 405: "invalid_request_error"}


def error_response(exc: MonolithError) -> JSONResponse:
    metrics.ERRORS.labels(exc.type).inc()
    return JSONResponse(exc.to_dict(), status_code=exc.status)


async def monolith_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, MonolithError)
    return error_response(exc)


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_TYPES.get(exc.status_code, "invalid_request_error" if exc.status_code < 500 else "internal_error")
    metrics.ERRORS.labels(kind).inc()
    body = {"error": {"type": kind, "message": str(exc.detail)}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)
