"""`/health` (what is loaded and alive), `/ready` (warm and able to serve), `/metrics`."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monolith.config import Settings
from monolith.registry import Registry


def _warnings(request: Request) -> list[str]:
    registry: Registry = request.app.state.registry
    found = registry.warnings()
    rag = getattr(request.app.state, "rag", None)
    if rag is not None:
        found.extend(rag.warnings())
    return list(dict.fromkeys(found))


async def health(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    warnings = _warnings(request)
    body: dict[str, Any] = {"status": "degraded" if warnings else "ok", "providers": registry.health(),
                            "warnings": warnings}
    if not request.scope.get("state", {}).get("authenticated", True):
        body = _redacted(body)
    return JSONResponse(body)


def readiness(request: Request) -> tuple[str, dict[str, Any]]:
    """The states, worst first (README, "Readiness"): not_ready (loading; a configured engine
    failed, even while its mock answers, unless server.ready_when_degraded), degraded (a planned
    mock, a per-request fallback, a swap, a warning), ready."""
    registry: Registry = request.app.state.registry
    settings: Settings = request.app.state.settings
    rag = getattr(request.app.state, "rag", None)
    warnings = _warnings(request)
    health = registry.health()
    providers = {
        name: {k: s[k] for k in ("loaded", "state", "provider", "is_mock", "serving", "fallback_count", "model")}
        for name, s in health.items()
    }
    failures = [f"{name}: {s['failure']}" for name, s in health.items() if s["failure"]]
    failures += [f"{name}: {s['last_error']}" for name, s in health.items() if s["state"] == "failed" and not s["failure"]]
    blocking = [f for f in failures if not settings.server.ready_when_degraded]
    hard_failed = any(p["state"] == "failed" for p in providers.values())
    rag_status = rag.status() if rag is not None else {"enabled": False, "loaded": False}
    if getattr(request.app.state, "draining", False):
        status = "draining"
    elif registry.loading or hard_failed or blocking or rag_status.get("state") == "loading":
        status = "not_ready"
    elif failures or warnings or any(p["is_mock"] or p["fallback_count"] or p["state"] == "swapping"
                                     for p in providers.values()):
        status = "degraded"
    else:
        status = "ready"
    body: dict[str, Any] = {
        "status": status,
        "providers": providers,
        "rag": rag_status,
        "failures": failures,
        "warnings": warnings,
    }
    return status, body


async def ready(request: Request) -> Response:
    status, body = readiness(request)
    if not request.scope.get("state", {}).get("authenticated", True):
        body = _redacted(body)
    return JSONResponse(body, status_code=503 if status in ("not_ready", "draining") else 200)


SECRET_FIELDS = ("model_path", "last_error", "failure", "swaps", "placement")


def _redacted(body: dict[str, Any]) -> dict[str, Any]:
    """What an unauthenticated probe sees when keys are configured: states and counts, no
    paths, errors or swap history."""
    out = dict(body)
    out["providers"] = {name: {k: _anonymous(k, v) for k, v in p.items() if k not in SECRET_FIELDS}
                        for name, p in body["providers"].items()}
    if "failures" in body:
        out["failures"] = [f.split(":", 1)[0] for f in body["failures"]]
    out["warnings"] = [f"{len(body['warnings'])} warning(s): send an API key or the admin token to read them"] \
        if body["warnings"] else []
    if isinstance(body.get("rag"), dict):
        out["rag"] = {k: v for k, v in body["rag"].items()
                      if k not in ("index_path", "store_path", "database", "schema", "error")}
    return out


def _anonymous(key: str, value: Any) -> Any:
    # a remote server's address is the operator's; the field keeps its place
    return "remote" if key == "endpoint" and value != "in-process" else value


async def prometheus(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


routes = [
    Route("/health", health),
    Route("/ready", ready),
    Route("/metrics", prometheus),
]
