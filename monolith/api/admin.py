"""`POST /admin/models/{provider}` `{"path": ...}`: swap a provider's model without a restart.

Needs `Authorization: Bearer <server.admin_token>`; disabled when no token is set. The new model
is loaded and warmed up beside the old one (or after it, for a GPU LLM: `unload_first`), traffic
moves to it, and the old one is released when its open work is done. If the new one fails, the
old one keeps serving (or is loaded again) and the response says why (422)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monolith.api.auth import require_admin
from monolith.api.errors import error_body
from monolith.api.requests import read_json
from monolith.errors import Conflict, InvalidRequest, NotFound, SwapFailed
from monolith.registry import Registry
from monolith.registry.slot import SwapRefused


class SwapRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    path: str
    unload_first: bool | None = None


async def swap_model(request: Request) -> Response:
    require_admin(request)
    registry: Registry = request.app.state.registry
    provider = request.path_params["provider"]
    if provider not in registry.slots:
        raise NotFound(f"no provider {provider!r}; one of {', '.join(registry.slots)}", code="unknown_provider")
    body = await read_json(request, SwapRequest)
    if not body.path.strip():
        raise InvalidRequest("path is empty", param="path")
    try:
        entry = await registry.swap(provider, body.path, unload_first=body.unload_first)
    except SwapRefused as exc:
        raise Conflict(str(exc), code="swap_refused") from exc
    status = registry.slots[provider].status()
    body_out = {"provider": provider, "swap": entry, "model_path": status["model_path"], "loaded_at": status["loaded_at"]}
    if entry["ok"]:
        return JSONResponse(body_out)
    failed = SwapFailed(f"{provider}: the swap to {entry['to']} failed ({entry['error']}); {status['model_path']} serves",
                        code="swap_failed")
    return JSONResponse({**error_body(failed, where="admin swap"), **body_out}, status_code=failed.status)


routes = [Route("/admin/models/{provider}", swap_model, methods=["POST"])]
