"""One provider's place: what serves now, its state, its fallback mock, and what went wrong."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from monolith import metrics
from monolith.errors import Unavailable
from monolith.providers.base import Provider
from monolith.scheduler.placement import Assignment

log = logging.getLogger(__name__)

SlotState = Literal["idle", "loading", "loaded", "failed", "swapping"]
Builder = Callable[[], Provider]


def _iso(ts: float | None) -> str | None:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds") if ts else None


class Slot:
    def __init__(
        self,
        name: str,
        *,
        assignment: Assignment,
        fallback: str,
        build: Builder,
        build_mock: Builder,
        served_id: str,
    ) -> None:
        self.name = name
        self.assignment = assignment
        self.fallback = fallback
        self.build = build
        self.build_mock = build_mock
        self.served_id = served_id
        self.state: SlotState = "idle"
        self.primary: Provider | None = None
        self.mock: Provider | None = None
        self.fallback_count = 0
        self.last_error: str | None = None
        self.loaded_at: float | None = None
        self.load_seconds: float | None = None
        self.warnings: deque[str] = deque(maxlen=8)
        self.swap_history: deque[dict[str, Any]] = deque(maxlen=8)
        self.swap_done = asyncio.Event()
        self.swap_done.set()

    # --- lifecycle -----------------------------------------------------------------------

    async def load(self) -> None:
        self.state = "loading"
        start = time.perf_counter()
        try:
            provider = await self._start(self.build)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("%s failed to load: %s", self.name, self.last_error, exc_info=exc)
            if self.can_fallback:
                await self._serve_mock_after_failure(f"failed to load ({self.last_error})")
            else:
                self.state = "failed"
                self._publish()
            return
        self.primary = provider
        self.state = "loaded"
        self.loaded_at = time.time()
        self.load_seconds = time.perf_counter() - start
        log.info(
            "%s loaded", self.name,
            extra={"provider": self.name, "backend": provider.backend, "load_s": round(self.load_seconds, 3)},
        )
        self._publish()

    @staticmethod
    async def _start(build: Builder) -> Provider:
        provider = build()
        try:
            await provider.load()
            await provider.warmup()
        except BaseException:
            await provider.close()
            raise
        return provider

    async def _serve_mock_after_failure(self, reason: str) -> None:
        mock = await self.ensure_mock()
        self.primary = mock
        self.state = "loaded"
        self.loaded_at = time.time()
        self.record_fallback(reason)

    async def close(self) -> None:
        for provider in {id(p): p for p in (self.primary, self.mock) if p is not None}.values():
            try:
                await provider.close()
            except Exception:
                log.exception("%s: close failed", self.name)
        self.primary = None
        self.mock = None
        self.state = "idle"
        self._publish()

    # --- serving ---------------------------------------------------------------------------

    @property
    def can_fallback(self) -> bool:
        return self.fallback == "mock" and self.assignment.backend != "mock"

    async def current(self, wait_s: float = 0.0) -> Provider:
        """What serves now; waits (bounded) while a swap is in progress."""
        if self.state == "swapping" and wait_s > 0:
            try:
                await asyncio.wait_for(self.swap_done.wait(), wait_s)
            except TimeoutError:
                pass
        if self.primary is None:
            if self.state in ("loading", "idle"):
                raise Unavailable(f"{self.name} is still loading", code="model_loading")
            raise Unavailable(f"{self.name} is not available: {self.last_error}", code="provider_failed")
        return self.primary

    async def ensure_mock(self) -> Provider:
        if self.mock is None:
            mock = self.build_mock()
            await mock.load()
            self.mock = mock
        return self.mock

    def record_fallback(self, reason: str) -> None:
        self.fallback_count += 1
        metrics.FALLBACKS.labels(self.name).inc()
        self.warn(f"{self.name}: {reason}; the mock served instead")
        self._publish()

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
        log.warning(message, extra={"provider": self.name})

    def _publish(self) -> None:
        metrics.PROVIDER_LOADED.labels(self.name).set(1 if self.primary is not None else 0)
        metrics.PROVIDER_IS_MOCK.labels(self.name).set(1 if self.is_mock else 0)

    # --- reporting -------------------------------------------------------------------------

    @property
    def is_mock(self) -> bool:
        return self.primary is not None and self.primary.is_mock

    @property
    def serving_backend(self) -> str:
        return self.primary.backend if self.primary is not None else self.assignment.backend

    def all_warnings(self) -> list[str]:
        found = list(self.warnings)
        if self.primary is not None:
            found.extend(f"{self.name}: {w}" for w in self.primary.health_warnings())
        if self.is_mock and self.assignment.backend == "mock":
            found.append(f"{self.name}: mock provider in use")
        return found

    def status(self) -> dict[str, Any]:
        return {
            "provider": self.serving_backend,
            "configured_provider": self.assignment.backend,
            "endpoint": "in-process",
            "placement": self.assignment.describe(),
            "is_mock": self.is_mock,
            "fallback_count": self.fallback_count,
            "loaded": self.primary is not None,
            "state": self.state,
            "model": self.served_id,
            "model_path": self.primary.model_path if self.primary is not None else "",
            "loaded_at": _iso(self.loaded_at),
            "load_seconds": round(self.load_seconds, 3) if self.load_seconds is not None else None,
            "last_error": self.last_error,
            "swaps": list(self.swap_history),
        }
