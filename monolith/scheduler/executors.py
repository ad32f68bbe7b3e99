"""One single-thread executor per device group: blocking model calls never run on the event loop.

A GPU group's thread sets its CUDA device once, when it starts, so every library that uses
torch's current device (Fish Speech, sentence-transformers) lands on the planned GPU.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from monolith.scheduler.placement import Assignment

T = TypeVar("T")
log = logging.getLogger(__name__)


def _bind_cuda_device(index: int) -> None:
    # Only when torch is already loaded by a provider: mocks and sherpa-onnx need no torch.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.set_device(index)


class DeviceExecutor:
    """Runs blocking calls in order on one thread bound to one device group."""

    def __init__(self, key: str, cuda_index: int | None = None) -> None:
        self.key = key
        self.cuda_index = cuda_index
        initializer = (lambda: _bind_cuda_device(cuda_index)) if cuda_index is not None else None
        self._pool = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"monolith-{key}", initializer=initializer
        )
        self.busy_s = 0.0
        self.calls = 0

    async def run(self, fn: Callable[..., T], /, *args: Any) -> T:
        loop = asyncio.get_running_loop()

        def timed() -> T:
            if self.cuda_index is not None:
                _bind_cuda_device(self.cuda_index)  # cheap; torch may have loaded after start
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.busy_s += time.perf_counter() - start
                self.calls += 1

        return await loop.run_in_executor(self._pool, timed)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class ExecutorPool:
    """The executors of a plan, created on first use and keyed by device group."""

    def __init__(self) -> None:
        self._executors: dict[str, DeviceExecutor] = {}

    def for_assignment(self, assignment: Assignment) -> DeviceExecutor:
        key = assignment.executor_key
        if key not in self._executors:
            index = assignment.devices[0] if assignment.devices else None
            self._executors[key] = DeviceExecutor(key, index)
        return self._executors[key]

    def all(self) -> dict[str, DeviceExecutor]:
        return dict(self._executors)

    def shutdown(self) -> None:
        for executor in self._executors.values():
            executor.shutdown()
        self._executors.clear()
