"""Error types shared by every layer; only `api/` turns them into HTTP or WebSocket errors.

The JSON shape is OpenAI's: `{"error": {"type", "message", "code", "param"}}` (code and param
null when there are none). `message` is for the logs; clients see `client_message`: the message
itself for what they can act on (4xx, 503), and never internal details for a server failure.
"""

from __future__ import annotations

from typing import Any, ClassVar


class MonolithError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None,
                 public: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.param = param
        self.public = public  # what a client is told of a server failure; the message stays in the logs

    @property
    def exposed(self) -> bool:
        """Whether the message itself is for the client (their request, or a retryable state)."""
        return self.status < 500 or self.retryable

    @property
    def client_message(self) -> str:
        if self.exposed:
            return self.message
        return self.public or "internal server error"

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.client_message, "code": self.code, "param": self.param}}


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


class Conflict(MonolithError):
    status = 409
    type = "conflict"


class SwapFailed(MonolithError):
    """The new model did not load; the old one serves (the operator's request, so it is told why)."""

    status = 422
    type = "swap_failed"


class Unavailable(MonolithError):
    """Not able to serve now (loading, swapping, missing index); worth retrying later."""

    status = 503
    type = "service_unavailable"
    retryable = True


class ProviderFailed(MonolithError):
    """A provider raised while serving a request and no fallback was allowed."""

    status = 500
    type = "provider_error"


class ProviderTimeout(MonolithError):
    """A provider produced nothing in time; its work was aborted. Worth retrying."""

    status = 504
    type = "timeout"
    retryable = True


class InternalError(MonolithError):
    """Anything that was not expected: a bug, a library's own exception."""

    status = 500
    type = "internal_error"


class ModelNotFound(NotFound):
    """OpenAI answers an unknown model with 404, type invalid_request_error, code model_not_found."""

    type = "invalid_request_error"

    def __init__(self, model: str) -> None:
        super().__init__(f"The model `{model}` does not exist.", code="model_not_found", param="model")
