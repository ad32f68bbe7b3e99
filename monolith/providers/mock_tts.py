"""Renders a tone whose length follows the text, paced by time-to-first-chunk and real-time factor.

With `max_batch` above 1 it models a batched decoder: one loop advances every active chunk a
step at a time, and a step for b chunks costs b ** batch_cost_exponent of a step for one (a GPU
decoding a batch costs little more than decoding one)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import numpy as np

from monolith.config import MockTTSConfig
from monolith.providers.tts import TTSProvider

SECONDS_PER_CHAR = 0.08
PIECE_S = 0.2  # audio is yielded in pieces of this length, like a vocoder's frames


class MockTTS(TTSProvider):
    backend = "mock"
    is_mock = True
    native_sample_rate = 24000

    def __init__(self, config: MockTTSConfig, *, model_id: str = "mock-tts", max_batch: int = 1) -> None:
        super().__init__(model_id=model_id)
        self.config = config
        self.max_batch = max_batch
        self.active: set[str] = set()
        self.cancelled: deque[str] = deque(maxlen=256)  # the last cancelled request ids
        self._batch: _BatchLoop | None = None

    def batch_capacity(self) -> int:
        return self.max_batch

    def voices(self) -> list[str]:
        return ["default"]

    async def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True, speed: float = 1.0,
    ) -> AsyncIterator[np.ndarray]:
        duration = max(len(text.strip()), 1) * SECONDS_PER_CHAR
        rate = self.native_sample_rate
        total = int(duration * rate)
        piece = int(PIECE_S * rate)
        t = np.arange(total, dtype=np.float32) / rate
        tone = (0.2 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
        pieces = [tone[start : start + piece] for start in range(0, total, piece)]
        self.active.add(request_id)
        done = False
        try:
            if self.max_batch > 1:
                if self._batch is None:
                    self._batch = _BatchLoop(PIECE_S * self.config.real_time_factor, self.config.batch_cost_exponent)
                async for chunk in self._batch.render(pieces, self.config.first_chunk_ms / 1000):
                    yield chunk
            else:
                await asyncio.sleep(self.config.first_chunk_ms / 1000)
                for i, chunk in enumerate(pieces):
                    if i:
                        await asyncio.sleep(len(chunk) / rate * self.config.real_time_factor)
                    yield chunk
            done = True
        finally:
            self.active.discard(request_id)
            if not done:
                self.cancelled.append(request_id)

    def running_requests(self) -> int:
        return len(self.active)


class _BatchLoop:
    """One decode loop for every active chunk: each step costs `step_s * b ** exponent` for b
    chunks, and gives each chunk its next piece (its first after `first_s` of steps)."""

    def __init__(self, step_s: float, exponent: float) -> None:
        self.step_s = max(step_s, 0.001)
        self.exponent = exponent
        self.active: list[_Chunk] = []
        self.task: asyncio.Task[None] | None = None
        self.steps = 0
        self.largest = 0
        self.busy_s = 0.0  # decode time spent, all steps together

    async def render(self, pieces: list[np.ndarray], first_s: float) -> AsyncIterator[np.ndarray]:
        chunk = _Chunk(pieces, max(1, round(first_s / self.step_s)))
        self.active.append(chunk)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run(), name="mock-tts-batch")
        try:
            while (piece := await chunk.out.get()) is not None:
                yield piece
        finally:
            if chunk in self.active:
                self.active.remove(chunk)  # cancelled: its slot is free at the next step

    async def _run(self) -> None:
        while self.active:
            self.steps += 1
            self.largest = max(self.largest, len(self.active))
            cost = self.step_s * len(self.active) ** self.exponent
            self.busy_s += cost
            await asyncio.sleep(cost)
            for chunk in list(self.active):
                if chunk.step():
                    self.active.remove(chunk)


class _Chunk:
    def __init__(self, pieces: list[np.ndarray], first_steps: int) -> None:
        self.pieces = pieces
        self.wait = first_steps
        self.out: asyncio.Queue[np.ndarray | None] = asyncio.Queue()

    def step(self) -> bool:
        """One decode step; True when the chunk is done."""
        if self.wait > 1:
            self.wait -= 1
            return False
        self.wait = 0
        if self.pieces:
            self.out.put_nowait(self.pieces.pop(0))
        if not self.pieces:
            self.out.put_nowait(None)
            return True
        return False
