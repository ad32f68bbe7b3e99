"""Admin endpoints (reload, swap) need `Authorization: Bearer <server.admin_token>` when one is set."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from monolith.config import Settings
from monolith.errors import Unauthorized


def require_admin(request: Request) -> None:
    settings: Settings = request.app.state.settings
    token = settings.server.admin_token
    if not token:
        return  # no token configured: admin endpoints are open (bind to localhost, or set one)
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise Unauthorized("this endpoint needs `Authorization: Bearer <server.admin_token>`", code="invalid_admin_token")
