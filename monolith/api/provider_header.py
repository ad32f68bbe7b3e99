"""`X-Monolith-Provider`: which backend served a provider route's request (`mock` when a mock
did, a fallback mock after the engine failed included), so a client can tell a placeholder
answer from a real one. /health says the same for the server as a whole (its warnings).

The facades note who gave the first output (registry/served.py); the header names those
backends for the route's own provider, comma-separated when several did (a speech request whose
later chunk fell back). A response that starts before any output (none was produced, or a
stream's body) names the backend serving the slot now; an error that nothing served gets none."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from monolith.registry import Registry
from monolith.registry.served import Served, served_var

HEADER = b"x-monolith-provider"
# route -> the provider slot it is served by
ROUTE_PROVIDERS = {
    "/v1/chat/completions": "llm",
    "/v1/audio/transcriptions": "stt",
    "/v1/audio/speech": "tts",
    "/v1/embeddings": "embedding",
    "/v1/rag/search": "embedding",
}


class ProviderHeaderMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        slot = ROUTE_PROVIDERS.get(scope.get("path", "")) if scope["type"] == "http" else None
        if slot is None:
            await self.app(scope, receive, send)
            return
        record = Served()
        token = served_var.set(record)

        async def send_with_provider(message: Message) -> None:
            if message["type"] == "http.response.start":
                backend = _backend(scope, record, slot, message.get("status", 200))
                if backend:
                    message = {**message, "headers": [*message.get("headers", []), (HEADER, backend.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_provider)
        finally:
            served_var.reset(token)


def _backend(scope: Scope, record: Served, slot: str, status: int) -> str:
    if record.by.get(slot):
        return ", ".join(record.by[slot])
    if status >= 400:
        return ""
    registry: Registry | None = getattr(scope["app"].state, "registry", None) if "app" in scope else None
    return registry.slots[slot].serving_backend if registry is not None and slot in registry.slots else ""
