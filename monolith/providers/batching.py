"""Micro-batching: calls that arrive within a few milliseconds of each other run as one batch.

Used by providers whose model call costs nearly the same for 1 or 32 inputs (an embedding
forward pass). Each caller submits its own list and gets back its own results; while one batch
runs, new calls queue up and form the next one, so under load the batch grows by itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

RunBatch = Callable[[list[In]], Awaitable[Sequence[Out]]]


@dataclass
class _Pending(Generic[In, Out]):
    items: Sequence[In]
    future: asyncio.Future[list[Out]] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


@dataclass
class BatchStats:
    batches: int = 0
    items: int = 0
    calls: int = 0
    largest: int = 0


class MicroBatcher(Generic[In, Out]):
    """Collect calls for up to `max_wait_s` (or until `max_items`), then run them together."""

    def __init__(self, run_batch: RunBatch[In, Out], *, max_items: int, max_wait_s: float) -> None:
        self.run_batch = run_batch
        self.max_items = max_items
        self.max_wait_s = max_wait_s
        self.stats = BatchStats()
        self._pending: list[_Pending[In, Out]] = []
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, items: Sequence[In]) -> list[Out]:
        if not items:
            return []
        pending: _Pending[In, Out] = _Pending(items)
        self._pending.append(pending)
        self._arrived.set()
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain(), name="monolith-microbatch")
        return await pending.future  # cancelling this drops the call if its batch has not started

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for pending in self._pending:
            pending.future.cancel()
        self._pending.clear()

    def _queued_items(self) -> int:
        return sum(len(p.items) for p in self._pending if not p.future.done())

    async def _drain(self) -> None:
        while self._pending:
            await self._gather_window()
            batch = self._take()
            if batch:
                await self._run(batch)

    async def _gather_window(self) -> None:
        """Wait until the window closes or enough items are queued to fill a batch."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait_s
        while self._queued_items() < self.max_items:
            left = deadline - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    def _take(self) -> list[_Pending[In, Out]]:
        """Whole calls, oldest first, up to max_items (a single larger call runs on its own)."""
        batch: list[_Pending[In, Out]] = []
        size = 0
        while self._pending:
            head = self._pending[0]
            if head.future.done():  # cancelled while waiting: never runs
                self._pending.pop(0)
                continue
            if batch and size + len(head.items) > self.max_items:
                break
            batch.append(self._pending.pop(0))
            size += len(head.items)
        return batch

    async def _run(self, batch: list[_Pending[In, Out]]) -> None:
        flat = [item for p in batch for item in p.items]
        self.stats.batches += 1
        self.stats.calls += len(batch)
        self.stats.items += len(flat)
        self.stats.largest = max(self.stats.largest, len(flat))
        try:
            results = await self.run_batch(flat)
        except asyncio.CancelledError:
            for p in batch:
                p.future.cancel()
            raise
        except Exception as exc:
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        start = 0
        for p in batch:
            end = start + len(p.items)
            if not p.future.done():
                p.future.set_result(list(results[start:end]))
            start = end
