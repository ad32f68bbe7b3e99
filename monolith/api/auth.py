"""Who may call what: API keys on /v1 (HTTP and WebSocket), browser Origins on WebSockets, the
admin token on /admin. Keys are compared in constant time and never logged.

- HTTP: `Authorization: Bearer <key>` (what the OpenAI SDK sends).
- WebSocket: the same header, or, for browsers (which cannot set headers on a WebSocket), the
  subprotocol `openai-insecure-api-key.<key>` that OpenAI's Realtime clients offer.
- A WebSocket upgrade whose `Origin` is another site is refused unless `server.cors_origins`
  lists it (or `*`); same origin, and no Origin at all (non-browser clients), always pass.
- /health and /ready stay open to probes; without a key (or the admin token) their bodies leave
  out paths, errors and swap history. /metrics needs a key when `server.metrics_need_key`.
"""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from monolith import metrics
from monolith.config import Settings
from monolith.errors import Forbidden, Unauthorized

KEY_SUBPROTOCOL = "openai-insecure-api-key."
CLOSE_POLICY_VIOLATION = 1008


def load_api_keys(settings: Settings) -> list[str]:
    """`server.api_keys` and the keys in `server.api_keys_file` (one per line, # comments)."""
    keys = [k.strip() for k in settings.server.api_keys if k.strip()]
    if settings.server.api_keys_file:
        path = settings.resolve(settings.server.api_keys_file)
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        keys += [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return keys


def _matches(given: str, secrets: list[str]) -> bool:
    # Every key is compared, so the time taken does not say which one (nearly) matched.
    found = False
    for secret in secrets:
        found |= hmac.compare_digest(given.encode(), secret.encode())
    return found


def bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def subprotocol_key(scope: Scope) -> str | None:
    for offered in scope.get("subprotocols", []):
        if offered.startswith(KEY_SUBPROTOCOL):
            return str(offered[len(KEY_SUBPROTOCOL):])
    return None


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def origin_allowed(scope: Scope, allowed: list[str]) -> bool:
    origin = _header(scope, b"origin")
    if origin is None or "*" in allowed or origin in allowed:
        return True
    return urlsplit(origin).netloc == _header(scope, b"host")  # same origin


class AccessMiddleware:
    """Checks keys and origins before a request reaches its route; marks who is authenticated."""

    def __init__(self, app: ASGIApp, *, settings: Settings, api_keys: list[str]) -> None:
        self.app = app
        self.settings = settings
        self.keys = api_keys
        self.admin = [settings.server.admin_token] if settings.server.admin_token else []

    def authenticated(self, scope: Scope) -> bool:
        given = bearer(scope) or (subprotocol_key(scope) if scope["type"] == "websocket" else None)
        return given is not None and _matches(given, self.keys + self.admin)

    def _needs_key(self, path: str) -> bool:
        if not self.keys:
            return False
        return path.startswith("/v1/") or (path == "/metrics" and self.settings.server.metrics_need_key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        # With no key and no admin token configured, everyone sees everything (as before keys).
        scope.setdefault("state", {})["authenticated"] = self.authenticated(scope) or not (self.keys or self.admin)
        if scope["type"] == "websocket":
            refusal = None
            if not origin_allowed(scope, self.settings.server.cors_origins):
                refusal = "origin_not_allowed"
            elif self._needs_key(path) and not self._key_given(scope):
                refusal = "invalid_api_key"
            if refusal is not None:
                metrics.ERRORS.labels("authentication_error" if refusal == "invalid_api_key" else "permission_error").inc()
                await send({"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": refusal})
                return
        elif self._needs_key(path) and not self._key_given(scope):
            error = Unauthorized("a valid API key is required: `Authorization: Bearer <key>`", code="invalid_api_key")
            metrics.ERRORS.labels(error.type).inc()
            body = json.dumps(error.to_dict()).encode()
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def _key_given(self, scope: Scope) -> bool:
        given = bearer(scope) or (subprotocol_key(scope) if scope["type"] == "websocket" else None)
        return given is not None and _matches(given, self.keys)


def require_admin(request: Request) -> None:
    """Admin endpoints (model swap, RAG reload) need `Authorization: Bearer <server.admin_token>`
    and are disabled when no token is set."""
    settings: Settings = request.app.state.settings
    token = settings.server.admin_token
    if not token:
        raise Forbidden("admin endpoints are disabled: set server.admin_token (MONOLITH_SERVER__ADMIN_TOKEN)",
                        code="admin_disabled")
    given = bearer(request.scope) or ""
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise Unauthorized("this endpoint needs `Authorization: Bearer <server.admin_token>`", code="invalid_admin_token")
