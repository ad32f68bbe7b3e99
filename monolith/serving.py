"""uvicorn as monolith runs it: SIGTERM drains before it stops; slow clients are cut off.

uvicorn alone stops on SIGTERM by closing its sockets and waiting for open connections, for as
long as they last (a voice WebSocket lasts minutes; 48.8 s was seen with one slow client). Here
SIGTERM first drains (app.drain: /ready 503, sessions told and given time to finish), then
uvicorn shuts down with a bounded grace, so the process is gone within `server.drain_timeout_s`
whatever clients do. A second signal, or Ctrl-C, stops at once as uvicorn does."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn
from starlette.applications import Starlette

from monolith.api.limits import header_deadline_protocol
from monolith.app import drain
from monolith.config import Settings

SHUTDOWN_SHARE = 0.25  # of drain_timeout_s, kept for uvicorn's own shutdown (HTTP requests, lifespan)
SHUTDOWN_MAX_S = 10.0


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_sessions: Callable[[], Awaitable[None]]) -> None:
        super().__init__(config)
        self._drain_sessions = drain_sessions
        self._drain_requested = False
        self._drain_task: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self._drain_requested and not self.should_exit:
            self._captured_signals.append(sig)  # re-raised after shutdown: the exit status stays 0
            self._drain_requested = True  # a signal handler may not await: on_tick starts it
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._drain_requested and self._drain_task is None:
            self._drain_task = asyncio.create_task(self._drain_then_stop(), name="monolith-drain")
        return await super().on_tick(counter)

    async def _drain_then_stop(self) -> None:
        try:
            await self._drain_sessions()
        finally:
            self.should_exit = True


def shutdown_grace(settings: Settings) -> float:
    return min(SHUTDOWN_MAX_S, settings.server.drain_timeout_s * SHUTDOWN_SHARE)


def make_server(app: Starlette, settings: Settings, host: str, port: int) -> DrainingServer:
    server = settings.server
    grace = shutdown_grace(settings)
    config = uvicorn.Config(
        app, host=host, port=port, log_config=None, access_log=False, ws_max_size=16 * 1024 * 1024,
        http=header_deadline_protocol(server.header_timeout_s), limit_concurrency=server.max_connections,
        timeout_graceful_shutdown=max(1, round(grace)),
    )
    return DrainingServer(config, lambda: drain(app, server.drain_timeout_s - grace))
