"""`create_app(settings, registry)`: the Starlette app and its lifespan (load, serve, close)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute

from monolith import metrics
from monolith.api import admin, chat, embeddings, health, models, page, rag, realtime, speech, transcriptions, voice_ws
from monolith.api.auth import AccessMiddleware, load_api_keys
from monolith.api.errors import http_error_handler, monolith_error_handler
from monolith.api.limits import BodyLimitMiddleware
from monolith.api.middleware import RequestContextMiddleware
from monolith.api.provider_header import ProviderHeaderMiddleware
from monolith.config import Settings
from monolith.errors import MonolithError
from monolith.looplag import watch_loop_lag
from monolith.rag.pg_service import PgVectorRag
from monolith.rag.service import RagBackend, RagService
from monolith.registry import Registry
from monolith.scheduler.placement import Plan, build_plan, detect_inventory
from monolith.voice.hub import SessionHub

log = logging.getLogger(__name__)


def create_app(settings: Settings, registry: Registry | None = None, *, plan: Plan | None = None) -> Starlette:
    """Build the app. Models load in the background after startup, so /ready can say 503."""
    if registry is None:
        plan = plan or build_plan(settings, detect_inventory(use_torch=not settings.cpu_mock))
        registry = Registry(settings, plan)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        assert registry is not None
        rag_service: RagBackend | None = app.state.rag
        loader = asyncio.create_task(_load(registry.start_loading(), rag_service), name="monolith-load")
        app.state.loader = loader
        lag_watch = asyncio.create_task(watch_loop_lag(), name="monolith-loop-lag")
        engine_watch = asyncio.create_task(_watch_after(loader, registry), name="monolith-engine-watch")
        try:
            yield
        finally:
            await app.state.voice.close_all()
            lag_watch.cancel()
            engine_watch.cancel()
            loader.cancel()
            with contextlib.suppress(BaseException):
                await loader
            if rag_service is not None:
                await rag_service.close()
            await registry.close()
            log.info("shut down")

    routes: Sequence[BaseRoute] = [
        *health.routes, *models.routes, *chat.routes, *transcriptions.routes, *speech.routes, *embeddings.routes, *rag.routes,
        *voice_ws.routes, *realtime.routes, *admin.routes, *page.routes,
    ]
    api_keys = load_api_keys(settings)
    middleware = [Middleware(RequestContextMiddleware), Middleware(ProviderHeaderMiddleware)]
    if settings.server.cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=settings.server.cors_origins, allow_methods=["*"],
                                     allow_headers=["*"], expose_headers=["x-request-id", "x-monolith-provider"]))
    middleware += [Middleware(AccessMiddleware, settings=settings, api_keys=api_keys),
                   Middleware(BodyLimitMiddleware, settings=settings)]
    app = Starlette(
        routes=list(routes),
        middleware=middleware,
        exception_handlers={MonolithError: monolith_error_handler, HTTPException: http_error_handler},
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.rag = build_rag(settings, registry)
    app.state.voice = SessionHub(settings.voice.max_sessions)
    app.state.draining = False
    return app


async def drain(app: Starlette, within_s: float) -> None:
    """SIGTERM: /ready says `draining` (503) at once, new voice sessions are refused (1013), open
    ones are told and may finish their response; then the server stops."""
    app.state.draining = True
    metrics.DRAINING.set(1)
    hub: SessionHub = app.state.voice
    log.info("draining: %d voice session(s) get at most %.0f s to finish", len(hub.sessions), within_s)
    await hub.drain(within_s)


async def _watch_after(loader: asyncio.Task[None], registry: Registry) -> None:
    with contextlib.suppress(BaseException):
        await loader
    await registry.watch()


async def _load(providers: asyncio.Task[None], rag: RagBackend | None) -> None:
    """Providers and the RAG index load side by side; /ready waits for both."""
    await asyncio.gather(providers, rag.start() if rag is not None else asyncio.sleep(0))


def build_rag(settings: Settings, registry: Registry) -> RagBackend | None:
    """The retriever over the configured index, fed by the registry's embedding provider."""
    if not settings.rag.enabled:
        return None
    if settings.rag.backend == "pgvector":
        return PgVectorRag(settings.rag, embedder=registry.embedding)
    devices = registry.plan.assignments["embedding"].devices
    return RagService(
        settings.rag,
        index_path=settings.resolve(settings.rag.index_path),
        store_path=settings.resolve(settings.rag.store_path),
        embedder=registry.embedding,
        gpu_device=devices[0] if devices else None,
    )
