"""Read a JSON request body into a pydantic model, with 400s that say what is wrong."""

from __future__ import annotations

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from monolith.errors import InvalidRequest, PayloadTooLarge

M = TypeVar("M", bound=BaseModel)

MAX_JSON_BYTES = 16 * 1024 * 1024


def describe(exc: ValidationError) -> tuple[str, str | None]:
    """The first problem as `field: message`, and the field (OpenAI's `param`)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or None
    return (f"{where}: {first['msg']}" if where else first["msg"]), where


async def read_json(request: Request, model: type[M]) -> M:
    body = await request.body()
    if len(body) > MAX_JSON_BYTES:
        raise PayloadTooLarge(f"request body is larger than {MAX_JSON_BYTES} bytes")
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", code="invalid_json") from exc
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        message, param = describe(exc)
        raise InvalidRequest(message, code="invalid_value", param=param) from exc
