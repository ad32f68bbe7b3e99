"""Error types shared by every layer; only `api/` turns them into HTTP or WebSocket errors.

The JSON shape is OpenAI's: `{"error": {"type", "message", "code", "param"}}`.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MonolithError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code is not None:
            body["code"] = self.code
        if self.param is not None:
            body["param"] = self.param
        return {"error": body}


class InvalidRequest(MonolithError):
    status = 400
    type = "invalid_request_error"


class Unauthorized(MonolithError):
    status = 401
    type = "authentication_error"


class Forbidden(MonolithError):
    status = 403
    type = "permission_error"


class NotFound(MonolithError):
    status = 404
    type = "not_found_error"


class PayloadTooLarge(InvalidRequest):
    status = 413


class Unavailable(MonolithError):
    """Not able to serve now (loading, swapping, missing index); worth retrying later."""

    status = 503
    type = "service_unavailable"
    retryable = True


class ProviderFailed(MonolithError):
    """A provider raised while serving a request and no fallback was allowed."""

    status = 500
    type = "provider_error"


class ModelNotFound(NotFound):
    """OpenAI answers an unknown model with 404, type invalid_request_error, code model_not_found."""

    type = "invalid_request_error"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist.", code="model_not_found", param="model")
