"""TTS scheduling across sessions: one queue per TTS device, first chunks first.

A TTS device renders one chunk at a time. When several sessions want it, the chunk that opens
a response goes before chunks that continue one: the continuing response already has audio
playing (a sentence takes seconds to say, a chunk far less to render), while the opening
response is silent until its first chunk is done. Within a class, arrival order. Work that is
cancelled while it waits (barge-in, hang-up) leaves the queue without ever running.
`policy = "fifo"` turns the priority off (the benchmark compares the two).

A device that batches (its engine decodes several chunks in one pass: `[tts] max_batch`) holds
that many chunks at once: `capacity` slots, handed out in the same order."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Literal

from monolith import metrics

Policy = Literal["first-chunk-first", "fifo"]


class DeviceQueue:
    def __init__(self, policy: Policy = "first-chunk-first", capacity: Callable[[], int] | int = 1) -> None:
        self.policy = policy
        self._capacity = capacity
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._holding = 0
        self.started: deque[str] = deque(maxlen=256)  # the last labels, in the order their work began

    @property
    def capacity(self) -> int:
        """Chunks the device renders at once (1: one at a time). A callable follows the provider
        that serves now (a swap or a fallback mock may batch differently)."""
        return max(1, self._capacity() if callable(self._capacity) else self._capacity)

    @property
    def holding(self) -> int:
        return self._holding

    @property
    def waiting(self) -> int:
        return sum(1 for *_, f in self._waiting if not f.done())

    @contextlib.asynccontextmanager
    async def turn(self, *, first_in_response: bool, label: str = "") -> AsyncIterator[None]:
        """Hold the device for one chunk; waits for its turn by priority, then arrival."""
        priority = 0 if first_in_response or self.policy == "fifo" else 1
        queued_at = time.perf_counter()
        if self._holding >= self.capacity or self.waiting:
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (priority, next(self._order), future))
            try:
                await future
            except asyncio.CancelledError:
                if future.done() and not future.cancelled():
                    self._release()  # it was handed the device just as it was cancelled
                raise
        else:
            self._holding += 1
        metrics.TTS_QUEUE_WAIT.labels("first" if first_in_response else "later").observe(time.perf_counter() - queued_at)
        self.started.append(label)
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        """A slot is free: hand it to the next waiting chunk (the slot stays held), else free it."""
        self._holding -= 1
        while self._waiting and self._holding < self.capacity:
            _, _, future = heapq.heappop(self._waiting)
            if not future.done():  # skip the ones cancelled while waiting
                self._holding += 1
                future.set_result(None)
