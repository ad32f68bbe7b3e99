"""Owns the four provider slots: builds them from the plan, loads them, reports their health."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monolith.config import PROVIDER_SECTIONS, Settings
from monolith.providers.base import Provider
from monolith.providers.tts import TTSProvider
from monolith.registry import factories
from monolith.registry.facades import EmbeddingFacade, LLMFacade, STTFacade, TTSFacade
from monolith.registry.slot import Slot, SwapRefused
from monolith.registry.weights import missing_files
from monolith.scheduler.executors import ExecutorPool
from monolith.scheduler.placement import Plan
from monolith.scheduler.tts_queue import DeviceQueue

log = logging.getLogger(__name__)

# Tests and embedders may replace how a real provider is built (e.g. to inject a failure).
BuilderOverride = Callable[[Settings, str], Provider]


def _batch_capacity(provider: Provider | None) -> int:
    return provider.batch_capacity() if isinstance(provider, TTSProvider) else 1


class Registry:
    def __init__(
        self,
        settings: Settings,
        plan: Plan,
        *,
        executors: ExecutorPool | None = None,
        builders: dict[str, BuilderOverride] | None = None,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.executors = executors or ExecutorPool()
        overrides = builders or {}
        self.slots: dict[str, Slot] = {}
        for name in PROVIDER_SECTIONS:
            assignment = plan.assignments[name]
            self.slots[name] = Slot(
                name,
                assignment=assignment,
                fallback=getattr(settings, name).fallback,
                build=self._builder(name, overrides.get(name)),
                build_mock=functools.partial(factories.build_mock, settings, name),
                served_id=factories.served_id(settings, name),
                aliases=tuple(a for a in getattr(settings, name).model_aliases if a != factories.served_id(settings, name)),
                first_output_timeout_s=getattr(settings, name).first_output_timeout_s,
                output_gap_timeout_s=getattr(settings, name).output_gap_timeout_s,
                restart_after_failures=settings.server.restart_after_failures,
                restart_backoff_max_s=settings.server.restart_backoff_max_s,
            )
        wait = settings.server.swap_wait_s
        self.llm = LLMFacade(self.slots["llm"], wait)
        self.stt = STTFacade(self.slots["stt"], wait)
        tts_slot = self.slots["tts"]
        # the device holds as many chunks as the serving engine decodes at once
        device = DeviceQueue(settings.tts.scheduling, capacity=lambda: _batch_capacity(tts_slot.primary))
        self.tts = TTSFacade(tts_slot, wait, device, settings.tts.voice_aliases)
        self.embedding = EmbeddingFacade(self.slots["embedding"], wait)

    def _builder(self, name: str, override: BuilderOverride | None) -> Callable[[], Provider]:
        assignment = self.plan.assignments[name]
        if override is not None:
            return lambda: override(self.settings, name)
        if assignment.is_mock:
            return lambda: factories.build_mock(self.settings, name)
        return lambda: self.build_real(name)

    def build_real(self, name: str, model_path: str | None = None) -> Provider:
        assignment = self.plan.assignments[name]
        runner = self.executors.for_assignment(assignment)
        return factories.build_real(
            self.settings, name, assignment.backend, runner, assignment.devices, model_path
        )

    async def swap(self, name: str, path: str, *, unload_first: bool | None = None) -> dict[str, Any]:
        """Swap `name` to the model at `path` (relative paths: from the config's folder)."""
        slot = self.slots[name]
        assignment = self.plan.assignments[name]
        if assignment.is_remote:
            raise SwapRefused(f"{name} is served by {assignment.endpoint} ({name}.backend = \"remote\"): "
                              "change the model on that server")
        target = str(self.settings.resolve(path))
        if unload_first is None:
            # Two copies of a GPU LLM rarely fit; everything else loads beside the old model.
            unload_first = name == "llm" and assignment.on_gpu
        missing = await asyncio.to_thread(self._missing, name, Path(target))
        if missing:
            return slot.record_failed_swap(target, f"{target} is incomplete: missing {', '.join(missing)}")
        current = slot.primary.model_path if slot.primary is not None and slot.primary.model_path else None
        return await slot.swap(
            lambda: self._build_at(name, target), target, unload_first=unload_first,
            rebuild_old=lambda: self._build_at(name, current) if current else slot.build(),
        )

    def _missing(self, name: str, folder: Path) -> list[str]:
        return missing_files(name, self.plan.assignments[name].backend, folder)

    def _build_at(self, name: str, path: str) -> Provider:
        if self.plan.assignments[name].is_mock:
            mock = factories.build_mock(self.settings, name)
            mock.model_path = path  # mocks need no weights; the path shows in /health
            return mock
        return self.build_real(name, path)

    def start_loading(self) -> asyncio.Task[None]:
        """Mark every slot loading now (so /ready answers 503 at once) and load in the background."""
        for slot in self.slots.values():
            slot.state = "loading"
        return asyncio.create_task(self.load_all(), name="monolith-load")

    async def load_all(self) -> None:
        # The LLM loads in vLLM's own processes; the others on their executors: all at once.
        await asyncio.gather(*(slot.load() for slot in self.slots.values()))

    async def watch(self) -> None:
        """Every `server.health_check_interval_s`, ask each serving engine whether it is alive
        (vLLM's engine core is a separate process that can die between requests)."""
        while True:
            await asyncio.sleep(self.settings.server.health_check_interval_s)
            for slot in self.slots.values():
                provider = slot.primary
                if slot.state != "loaded" or provider is None or provider.is_mock:
                    continue
                try:
                    problem = provider.health_problem()
                except Exception as exc:  # a check that fails says as much as one that answers
                    problem = f"health check failed ({type(exc).__name__}: {exc})"
                if problem is not None:
                    slot.restart(problem)

    async def close(self) -> None:
        for slot in self.slots.values():
            await slot.close()
        self.executors.shutdown()

    @property
    def loading(self) -> bool:
        return any(s.state in ("idle", "loading") for s in self.slots.values())

    def health(self) -> dict[str, Any]:
        return {name: slot.status() for name, slot in self.slots.items()}

    def warnings(self) -> list[str]:
        found = list(self.plan.warnings)
        for slot in self.slots.values():
            found.extend(slot.all_warnings())
        return found

    def model_ids(self) -> dict[str, str]:
        return {name: slot.served_id for name, slot in self.slots.items()}
