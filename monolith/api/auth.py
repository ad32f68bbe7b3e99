"""Admin endpoints (reload, swap) need `Authorization: Bearer <server.admin_token>` when one is set."""

from __future__ import annotations

import hmac

from starlette.requests import Request

from monolith.config import Settings
from monolith.errors import Forbidden, Unauthorized


def require_admin(request: Request, *, open_without_token: bool = True) -> None:
    """`open_without_token`: with no token configured the endpoint is open (RAG reload, which
    only re-reads files) or disabled (model swap)."""
    settings: Settings = request.app.state.settings
    token = settings.server.admin_token
    if not token:
        if open_without_token:
            return
        raise Forbidden("admin endpoints are disabled: set server.admin_token (MONOLITH_SERVER__ADMIN_TOKEN)",
                        code="admin_disabled")
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise Unauthorized("this endpoint needs `Authorization: Bearer <server.admin_token>`", code="invalid_admin_token")
