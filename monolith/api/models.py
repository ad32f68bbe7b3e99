"""`GET /v1/models`, `GET /v1/models/{model}`, and the one place a request's `model` is checked
against what is served.

Each provider's model answers to its served id (the folder name, or a configured name), to
`default`, and to its `model_aliases` (OpenAI's names by default: `whisper-1`, `tts-1`,
`text-embedding-3-small`...). The list shows the served ids, as OpenAI lists real models, with
their aliases beside them; retrieving an alias answers with that name and the served id as `root`."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monolith.errors import ModelNotFound
from monolith.registry import Registry

_CREATED = int(time.time())


def resolve_model(registry: Registry, provider: str, requested: str | None) -> str:
    """The served id for `provider`; `default` (or nothing) means the configured model."""
    slot = registry.slots[provider]
    if requested in (None, "", "default", slot.served_id) or requested in slot.aliases:
        return slot.served_id
    raise ModelNotFound(str(requested))


def _card(model_id: str, kind: str, **extra: Any) -> dict[str, Any]:
    return {"id": model_id, "object": "model", "created": _CREATED, "owned_by": "monolith", "kind": kind, **extra}


async def list_models(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    data = [_card(slot.served_id, kind, aliases=list(slot.aliases)) for kind, slot in registry.slots.items()]
    return JSONResponse({"object": "list", "data": data})


async def retrieve_model(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    wanted = request.path_params["model"]
    for kind, slot in registry.slots.items():
        if wanted == slot.served_id:
            return JSONResponse(_card(wanted, kind, aliases=list(slot.aliases)))
    for kind, slot in registry.slots.items():
        if wanted in slot.aliases:
            return JSONResponse(_card(wanted, kind, root=slot.served_id))
    raise ModelNotFound(wanted)


routes = [Route("/v1/models", list_models), Route("/v1/models/{model:path}", retrieve_model)]
