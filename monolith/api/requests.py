"""Read a JSON request body into a pydantic model, with 400s that say what is wrong."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from monolith.api.json_input import parse_json
from monolith.errors import InvalidRequest

M = TypeVar("M", bound=BaseModel)


def describe(exc: ValidationError) -> tuple[str, str | None]:
    """The first problem as `field: message`, and the field (OpenAI's `param`)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or None
    return (f"{where}: {first['msg']}" if where else first["msg"]), where


async def read_json(request: Request, model: type[M]) -> M:
    """The body as `model`, strictly typed (`"5"` is not a number). Its size was bounded before
    it was read (api/limits.py)."""
    body = await request.body()
    data = parse_json(body)
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_json")
    try:
        return model.model_validate_json(body, strict=True)
    except ValidationError as exc:
        message, param = describe(exc)
        raise InvalidRequest(message, code="invalid_value", param=param) from None
