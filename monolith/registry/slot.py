"""One provider's place: what serves now, its state, its fallback mock, and what went wrong."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal

from monolith import metrics
from monolith.errors import Unavailable
from monolith.providers.base import IMPORTS, Provider
from monolith.scheduler.placement import Assignment

log = logging.getLogger(__name__)

SlotState = Literal["idle", "loading", "loaded", "failed", "swapping", "restarting"]
Builder = Callable[[], Provider]
RETIRE_WAIT_S = 600.0  # longest a replaced model is kept for the sessions still using it


class SwapRefused(Exception):
    pass


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
        aliases: tuple[str, ...] = (),
        first_output_timeout_s: float = 60.0,
        output_gap_timeout_s: float = 30.0,
        restart_after_failures: int = 5,
        restart_backoff_max_s: float = 60.0,
    ) -> None:
        self.name = name
        self.first_output_timeout_s = first_output_timeout_s
        self.output_gap_timeout_s = output_gap_timeout_s
        self.restart_after_failures = restart_after_failures
        self.restart_backoff_max_s = restart_backoff_max_s
        self.failures_in_a_row = 0
        self.restarts = 0
        self._restart_task: asyncio.Task[None] | None = None
        self.assignment = assignment
        self.fallback = fallback
        self.build = build
        self.build_mock = build_mock
        self.served_id = served_id
        self.aliases = aliases  # other names clients may use for served_id (OpenAI's defaults)
        self.state: SlotState = "idle"
        self.primary: Provider | None = None
        self.mock: Provider | None = None
        self.fallback_count = 0
        self.last_error: str | None = None
        # Why the configured engine is not serving (it failed to load, or died); None while it
        # serves, and always None for a planned mock. /ready answers 503 while it is set.
        self.failure: str | None = None
        self.loaded_at: float | None = None
        self.load_seconds: float | None = None
        self.warnings: deque[str] = deque(maxlen=8)
        self.swap_history: deque[dict[str, Any]] = deque(maxlen=8)
        self.swap_done = asyncio.Event()
        self.swap_done.set()
        self._retiring: set[asyncio.Task[None]] = set()
        self._retired: list[Provider] = []  # replaced by a swap, closed when their work is done

    # --- lifecycle -----------------------------------------------------------------------

    async def load(self) -> None:
        self.state = "loading"
        start = time.perf_counter()
        try:
            provider = await self._start(self.build)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.failure = f"{self.assignment.backend} failed to load ({self.last_error})"
            instead = "its mock serves in its place" if self.can_fallback else "nothing serves it (fallback = none)"
            log.error("%s: %s FAILED to load on %s: %s; %s", self.name, self.assignment.backend,
                      self.assignment.describe(), self.last_error, instead, exc_info=exc,
                      extra={"provider": self.name, "backend": self.assignment.backend})
            if self.assignment.is_remote:
                # A server that is not up yet (or is away) comes back by itself: keep trying, with
                # the mock in its place meanwhile (fallback = "mock"), as after a restart.
                self.restart(f"failed to load ({self.last_error})")
            elif self.can_fallback:
                await self._serve_mock_after_failure(f"failed to load ({self.last_error})")
            else:
                self.state = "failed"
                self._publish()
            return
        self.primary = provider
        self.state = "loaded"
        self.loaded_at = time.time()
        self.load_seconds = time.perf_counter() - start
        what = "mock (configured)" if provider.is_mock else f"{provider.backend} loaded {provider.model_path or self.served_id}"
        log.info(
            "%s: %s on %s in %.1f s", self.name, what, self.assignment.describe(), self.load_seconds,
            extra={"provider": self.name, "backend": provider.backend, "load_s": round(self.load_seconds, 3)},
        )
        self._publish()

    async def _start(self, build: Builder) -> Provider:
        """Build, import (one provider at a time, process-wide), load and warm up. An ImportError
        while another provider was importing is the import race, not the model's fault: one retry."""
        for attempt in (1, 2):
            provider = build()
            imports_before = IMPORTS.started
            try:
                await asyncio.to_thread(provider.ensure_imported)
                await provider.load()
                await provider.warmup()
            except BaseException as exc:
                await provider.close()
                raced = IMPORTS.active > 0 or IMPORTS.started > imports_before + 1
                if attempt == 1 and isinstance(exc, ImportError) and raced:
                    log.warning("%s: %s while another provider was importing its libraries; retrying once",
                                self.name, f"{type(exc).__name__}: {exc}", extra={"provider": self.name})
                    continue
                raise
            return provider
        raise AssertionError("unreachable")

    async def _serve_mock_after_failure(self, reason: str) -> None:
        mock = await self.ensure_mock()
        self.primary = mock
        self.state = "loaded"
        self.loaded_at = time.time()
        self.record_fallback(reason)

    async def close(self) -> None:
        if self._restart_task is not None:
            self._restart_task.cancel()
            with contextlib.suppress(BaseException):
                await self._restart_task
        for task in list(self._retiring):
            task.cancel()
        providers = [p for p in (self.primary, self.mock, *self._retired) if p is not None]
        self._retired.clear()
        for provider in {id(p): p for p in providers}.values():
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
        """What serves now. During a swap the old model serves until the new one takes over;
        when the old one had to be unloaded first, requests wait (bounded), then get the mock
        (fallback = "mock") or a 503."""
        if self.state == "swapping" and self.primary is None and wait_s > 0:
            try:
                await asyncio.wait_for(self.swap_done.wait(), wait_s)
            except TimeoutError:
                pass
        if self.primary is None:
            if self.state == "swapping":
                if self.can_fallback:
                    return await self.ensure_mock()
                raise Unavailable(f"{self.name} is swapping models; retry shortly", code="model_swapping")
            if self.state == "restarting":
                raise Unavailable(f"{self.name}'s engine is restarting; retry shortly", code="engine_restarting")
            if self.state in ("loading", "idle"):
                raise Unavailable(f"{self.name} is still loading", code="model_loading")
            # the reason is the operator's (in /health and the log), not every client's
            raise Unavailable(f"{self.name} is not available: its engine failed to load", code="provider_failed")
        return self.primary

    # --- swap ----------------------------------------------------------------------------------

    async def swap(self, build: Builder, path: str, *, unload_first: bool, rebuild_old: Builder) -> dict[str, Any]:
        """Load `build()` and move traffic to it; on failure the old model keeps (or resumes) serving.

        `unload_first` releases the old model before loading the new one (a 120B LLM and its
        successor do not fit on the same GPUs together); if the new one then fails, the old one
        is loaded again from its path."""
        if self.state == "swapping":
            raise SwapRefused(f"a swap of {self.name} is already running")
        old = self.primary
        if old is None or self.state != "loaded":
            raise SwapRefused(f"{self.name} is {self.state}; only a loaded provider can swap")
        entry: dict[str, Any] = {
            "at": _iso(time.time()), "from": old.model_path, "to": path, "ok": False,
            "unloaded_first": unload_first, "error": None, "seconds": None,
        }
        start = time.perf_counter()
        self.state = "swapping"
        self.swap_done.clear()
        self._publish()
        try:
            if unload_first:
                self.primary = None
                await old.close()
            try:
                new = await self._start(build)
            except Exception as exc:
                entry["error"] = f"{type(exc).__name__}: {exc}"
                self.last_error = entry["error"]
                if unload_first:
                    await self._restore(rebuild_old, entry)
                self.warn(f"{self.name}: swap to {path} failed ({entry['error']}); {entry['from'] or 'the old model'} serves")
            else:
                self.primary = new
                self.failure = None
                for stale in [w for w in self.warnings if w.startswith(f"{self.name}: swap to ")]:
                    self.warnings.remove(stale)  # a good swap ends what the failed ones warned of
                self.loaded_at = time.time()
                self.load_seconds = time.perf_counter() - start
                entry["ok"] = True
                if not unload_first:
                    self._retire(old)
                log.info("%s swapped", self.name, extra={"provider": self.name, "from": entry["from"], "to": path})
        finally:
            if self.state == "swapping":
                self.state = "loaded" if self.primary is not None else "failed"
            entry["seconds"] = round(time.perf_counter() - start, 3)
            self.swap_history.append(entry)
            self.swap_done.set()
            self._publish()
        return entry

    def record_failed_swap(self, path: str, error: str) -> dict[str, Any]:
        """A swap refused before anything was touched (e.g. an incomplete weights folder)."""
        entry: dict[str, Any] = {
            "at": _iso(time.time()), "from": self.primary.model_path if self.primary else "", "to": path,
            "ok": False, "unloaded_first": False, "error": error, "seconds": 0.0,
        }
        self.swap_history.append(entry)
        self.last_error = error
        self.warn(f"{self.name}: swap to {path} refused ({error}); the current model serves")
        return entry

    async def _restore(self, rebuild_old: Builder, entry: dict[str, Any]) -> None:
        try:
            self.primary = await self._start(rebuild_old)
            self.loaded_at = time.time()
            entry["restored"] = True
        except Exception as exc:
            entry["restored"] = False
            self.last_error = f"{entry['error']}; reloading the old model failed too: {type(exc).__name__}: {exc}"
            self.failure = f"{self.assignment.backend}: {self.last_error}"
            log.error("%s: %s", self.name, self.last_error)
            if self.can_fallback:
                await self._serve_mock_after_failure(f"swap failed and the old model could not be reloaded ({exc})")
            else:
                self.state = "failed"

    def _retire(self, old: Provider) -> None:
        """Close the old model once the work it holds (open streams, running requests) is done,
        so sessions in progress are not dropped by a swap."""

        async def drain() -> None:
            deadline = time.monotonic() + RETIRE_WAIT_S
            while old.in_flight() > 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            self._retired.remove(old)
            await old.close()

        self._retired.append(old)
        task = asyncio.create_task(drain(), name=f"retire-{self.name}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    # --- engine death and repeated failures ---------------------------------------------------------

    def record_success(self, provider: Provider) -> None:
        if provider is self.primary:
            self.failures_in_a_row = 0

    def record_failure(self, provider: Provider, exc: BaseException) -> None:
        """A call failed; an engine that died, or one that keeps failing, is restarted."""
        if provider is not self.primary or provider.is_mock:
            return
        self.failures_in_a_row += 1
        if provider.is_fatal(exc):
            gone = "became unreachable" if self.assignment.is_remote else "died"
            self.restart(f"{gone} ({type(exc).__name__}: {exc})")
        elif self.failures_in_a_row >= self.restart_after_failures:
            self.restart(f"failed {self.failures_in_a_row} calls in a row (last: {type(exc).__name__}: {exc})")

    @property
    def _restarting(self) -> str:
        return "reconnecting" if self.assignment.is_remote else "restarting"

    def restart(self, reason: str) -> None:
        """Take the engine out (its mock stands in, if allowed), then start a new one, backing off
        between attempts, until one loads. /ready answers 503 meanwhile. For a remote server a
        new one is a new connection: the server is asked again until it answers."""
        if self._restart_task is not None and not self._restart_task.done():
            return
        self._restart_task = asyncio.create_task(self._restart(reason), name=f"restart-{self.name}")

    async def _restart(self, reason: str) -> None:
        old = self.primary
        self.state = "restarting"
        self.failure = f"{self.assignment.backend} {reason}; {self._restarting}"
        self.last_error = reason
        self.restarts += 1
        metrics.PROVIDER_RESTARTS.labels(self.name).inc()
        log.error("%s: %s %s; %s", self.name, self.assignment.backend, reason, self._restarting,
                  extra={"provider": self.name})
        self.primary = await self.ensure_mock() if self.can_fallback else None
        if self.primary is not None:
            self.record_fallback(f"{self.assignment.backend} {reason}")
        self._publish()
        if old is not None and not old.is_mock:
            try:
                await old.close()
            except Exception:
                log.exception("%s: closing the failed engine failed", self.name)
        delay = 1.0
        while True:
            try:
                new = await self._start(self.build)
                break
            except Exception as exc:
                self.last_error = f"{self._restarting} failed: {type(exc).__name__}: {exc}"
                log.error("%s: %s; next try in %g s", self.name, self.last_error, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.restart_backoff_max_s)
        self.primary, self.state, self.failure, self.failures_in_a_row = new, "loaded", None, 0
        self.loaded_at = time.time()
        log.info("%s: %s %s and serving again", self.name, new.backend,
                 "reconnected" if self.assignment.is_remote else "restarted", extra={"provider": self.name})
        self._publish()

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
    def serving(self) -> str:
        """engine (the configured engine serves), planned_mock (a mock was asked for),
        fallback_mock (a mock stands in for a failed engine), or none."""
        if self.primary is None:
            return "none"
        if not self.primary.is_mock:
            return "engine"
        return "planned_mock" if self.assignment.backend == "mock" else "fallback_mock"

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
            "endpoint": self.assignment.endpoint or "in-process",  # a remote server's URL, without credentials
            "placement": self.assignment.describe(),
            "is_mock": self.is_mock,
            "serving": self.serving,
            "fallback_count": self.fallback_count,
            "loaded": self.primary is not None,
            "state": self.state,
            "model": self.served_id,
            "model_path": self.primary.model_path if self.primary is not None else "",
            "loaded_at": _iso(self.loaded_at),
            "load_seconds": round(self.load_seconds, 3) if self.load_seconds is not None else None,
            "last_error": self.last_error,
            "failure": self.failure,
            "restarts": self.restarts,
            "swaps": list(self.swap_history),
        }
