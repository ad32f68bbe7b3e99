"""The event-loop side: live streams, and the one decode loop that serves all of them.

Sessions only append audio (`feed` never blocks). Every `decode_interval_ms` the loop takes the
streams with new audio and hands them to the engine in one executor call, which decodes them
as one batch; the events that come back go to each stream's queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import numpy as np

from monolith.providers.base import BlockingRunner
from monolith.providers.sherpa_stt.engines import Engine, StreamState
from monolith.providers.stt import Segment, STTEvent, STTStream
from monolith.turn_end import EndOfTurn

log = logging.getLogger(__name__)


class SherpaStream(STTStream):
    def __init__(self, loop: DecodeLoop, state: StreamState, request_id: str) -> None:
        self.loop = loop
        self.state = state
        self.request_id = request_id
        self.pending: list[np.ndarray] = []
        self.queue: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self.closed = False

    async def feed(self, samples: np.ndarray) -> None:
        if self.closed or not samples.size:
            return
        self.pending.append(np.asarray(samples, dtype=np.float32))
        self.loop.wake()

    def take_pending(self) -> np.ndarray:
        audio = np.concatenate(self.pending) if self.pending else np.zeros(0, dtype=np.float32)
        self.pending = []
        return audio

    def deliver(self, events: list[STTEvent]) -> None:
        if not self.closed:
            for ev in events:
                self.queue.put_nowait(ev)

    async def events(self) -> AsyncIterator[STTEvent]:
        while True:
            ev = await self.queue.get()
            if ev is None:
                return
            yield ev

    async def flush(self) -> None:
        await self.loop.flush(self)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.release(self)
        self.queue.put_nowait(None)


class DecodeLoop:
    def __init__(self, engine: Engine, runner: BlockingRunner, interval_s: float) -> None:
        self.engine = engine
        self.runner = runner
        self.interval_s = interval_s
        self.streams: set[SherpaStream] = set()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one engine call at a time: sherpa streams are not thread safe
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="monolith-stt-decode")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for stream in list(self.streams):
            await stream.close()

    def wake(self) -> None:
        self._wake.set()

    async def open(self, sample_rate: int, request_id: str, end_of_turn: EndOfTurn | None = None) -> SherpaStream:
        async with self._lock:
            state = await self.runner.run(self.engine.new_state, sample_rate, end_of_turn)
        stream = SherpaStream(self, state, request_id)
        self.streams.add(stream)
        return stream

    def release(self, stream: SherpaStream) -> None:
        # A step already under way may still hold the stream's state; the pool hands the
        # detector out again only from the executor, under the lock, after that step.
        self.streams.discard(stream)
        self.engine.release(stream.state)

    async def flush(self, stream: SherpaStream) -> None:
        if stream.closed:
            return
        await self._step_once()  # decode what was fed before the commit first
        async with self._lock:
            if stream.closed:  # closed meanwhile: its detector may be another session's now
                return
            events = await self.runner.run(self.engine.flush, stream.state)
        stream.deliver(events)

    async def transcribe(self, samples: np.ndarray) -> AsyncIterator[Segment]:
        """Whole audio (16 kHz) -> utterances as they are decoded, a piece per executor call,
        taking turns with the live streams so a long file never stalls them."""
        async with self._lock:
            job = await self.runner.run(self.engine.transcription, samples)
        while True:
            async with self._lock:
                segments = await self.runner.run(job.advance)
            if segments is None:
                return
            for segment in segments:
                yield segment

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._step_once()
            except Exception:
                # One bad step must not end the loop for every session.
                log.exception("STT decode step failed")
            await asyncio.sleep(self.interval_s)  # let audio gather: a bigger batch next time

    async def _step_once(self) -> None:
        async with self._lock:  # taken first: a stream that closed before it is left out
            active = [s for s in self.streams if s.pending]
            if not active:
                return
            batch = [(s.state, s.take_pending()) for s in active]
            results = await self.runner.run(self.engine.step, batch)
        for stream, events in zip(active, results, strict=True):
            stream.deliver(events)
