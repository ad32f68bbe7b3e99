"""`GET /v1/models`, and the one place a request's `model` is checked against what is served."""

from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monolith.errors import ModelNotFound
from monolith.registry import Registry

_CREATED = int(time.time())


def resolve_model(registry: Registry, provider: str, requested: str | None) -> str:
    """The served id for `provider`; `default` (or nothing) means the configured model."""
    served = registry.slots[provider].served_id
    if requested in (None, "", "default", served):
        return served
    raise ModelNotFound(str(requested))


async def list_models(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    data = [
        {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "monolith", "kind": kind}
        for kind, model_id in registry.model_ids().items()
    ]
    return JSONResponse({"object": "list", "data": data})


routes = [Route("/v1/models", list_models)]
