"""Segments speech by energy and returns a fixed placeholder transcript, paced like a real decoder."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np

from monolith.config import MockSTTConfig, STTConfig
from monolith.providers.base import Capabilities
from monolith.providers.stt import Segment, STTEvent, STTProvider, STTStream
from monolith.turn_end import EndOfTurn

FRAME_MS = 20.0
PARTIAL_EVERY_MS = 200.0
FULL_TRANSCRIPT_AFTER_MS = 1500.0  # partials grow towards the full placeholder over this time


class EnergySegmenter:
    """Frame-energy VAD with a minimum speech duration and a trailing-silence rule; with
    `pause_ms`, a pause (that much silence, the turn not over yet) and its resumption too."""

    def __init__(self, *, threshold: float, min_speech_ms: float, silence_ms: float, max_utterance_ms: float,
                 pause_ms: float | None = None) -> None:
        self.threshold = threshold
        self.min_speech_ms = min_speech_ms
        self.silence_ms = silence_ms  # the turn's silence: the stream may change it as text comes
        self.max_utterance_ms = max_utterance_ms
        self.pause_ms = pause_ms
        self.position_ms = 0.0
        self.in_speech = False
        self.paused = False
        self.onset_ms = 0.0
        self.voiced_run_ms = 0.0
        self.silence_run_ms = 0.0
        self.speech_ms = 0.0

    def step(self, frame: np.ndarray, frame_ms: float) -> list[str]:
        """Advance one frame; return what happened: started / speaking / paused / resumed / stopped."""
        voiced = float(np.sqrt(np.mean(np.square(frame)))) >= self.threshold
        start = self.position_ms
        self.position_ms += frame_ms
        if not self.in_speech:
            if not voiced:
                self.voiced_run_ms = 0.0
                return []
            if self.voiced_run_ms == 0.0:
                self.onset_ms = start
            self.voiced_run_ms += frame_ms
            if self.voiced_run_ms < self.min_speech_ms:
                return []
            self.in_speech, self.speech_ms, self.silence_run_ms = True, self.voiced_run_ms, 0.0
            return ["started"]
        self.speech_ms += frame_ms
        self.silence_run_ms = 0.0 if voiced else self.silence_run_ms + frame_ms
        if self.silence_run_ms >= self.silence_ms or self.speech_ms >= self.max_utterance_ms:
            self.end()
            return ["stopped"]
        if voiced and self.paused:
            self.paused = False
            return ["resumed", "speaking"]
        if self.pause_ms is not None and not self.paused and self.silence_run_ms >= self.pause_ms:
            self.paused = True
            return ["paused"]
        return ["speaking"]

    def end(self) -> None:
        self.in_speech = self.paused = False
        self.voiced_run_ms = 0.0

    @property
    def speech_end_ms(self) -> float:
        return self.position_ms - self.silence_run_ms


class MockSTTStream(STTStream):
    def __init__(self, settings: STTConfig, mock: MockSTTConfig, sample_rate: int, owner: MockSTT,
                 end_of_turn: EndOfTurn | None = None) -> None:
        self.mock = mock
        self.sample_rate = sample_rate
        self.owner = owner
        self.end_of_turn = end_of_turn
        self.frame = int(sample_rate * FRAME_MS / 1000)
        self.default_silence_ms = min(settings.vad_silence_ms, settings.endpoint_trailing_silence_ms)
        self.segmenter = EnergySegmenter(
            threshold=mock.energy_threshold,
            min_speech_ms=settings.vad_min_speech_ms,
            silence_ms=self.default_silence_ms,
            max_utterance_ms=settings.max_utterance_s * 1000,
            pause_ms=end_of_turn.pause_ms if end_of_turn is not None else None,
        )
        self.pending = np.zeros(0, dtype=np.float32)
        self.queue: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self.timers: set[asyncio.TimerHandle] = set()
        self.last_due = 0.0
        self.last_partial_at = 0.0
        self.last_partial = ""
        self.turns = 0
        self.closed = False

    def _later(self, event: STTEvent) -> None:
        # A real decoder answers after its decode time; keep that latency in mock mode, and the
        # order of the delayed events (a resumption never overtakes its pause).
        loop = asyncio.get_running_loop()
        now = loop.time()
        self.timers = {t for t in self.timers if t.when() > now}  # drop the ones that fired
        self.last_due = max(now + self.mock.decode_delay_ms / 1000, self.last_due + 1e-6)
        self.timers.add(loop.call_at(self.last_due, self._emit, event))

    def _emit(self, event: STTEvent) -> None:
        if not self.closed:
            self.queue.put_nowait(event)

    def _text_so_far(self) -> str:
        full = self.mock.transcript
        share = min(1.0, self.segmenter.speech_ms / FULL_TRANSCRIPT_AFTER_MS)
        return full[: max(1, int(len(full) * share))]

    def _text_at_pause(self) -> str:
        """What the mock recognizer has heard when the speech stops: all of it, unless this is a
        turn whose final it revises (then its last words are missing)."""
        every = self.mock.pause_text_differs_every
        full = self.mock.transcript
        if every and self.turns % every == 0:
            return full[: max(1, len(full) * 2 // 3)]
        return full

    async def feed(self, samples: np.ndarray) -> None:
        if self.closed:
            return
        self.pending = np.concatenate([self.pending, np.asarray(samples, dtype=np.float32)])
        seg = self.segmenter
        while self.pending.size >= self.frame:
            frame, self.pending = self.pending[: self.frame], self.pending[self.frame :]
            if self.end_of_turn is not None and seg.in_speech:
                seg.silence_ms = self.end_of_turn.silence_ms(self._text_at_pause(), self.default_silence_ms)
            for what in seg.step(frame, FRAME_MS):
                self._on(what)

    def _on(self, what: str) -> None:
        seg = self.segmenter
        if what == "started":
            self.turns += 1
            self.queue.put_nowait(STTEvent("speech_started", audio_ms=seg.onset_ms))
            self.last_partial_at, self.last_partial = seg.speech_ms, ""
        elif what == "speaking" and not seg.paused and seg.speech_ms - self.last_partial_at >= PARTIAL_EVERY_MS:
            self.last_partial_at = seg.speech_ms
            text = self._text_so_far()
            if text != self.last_partial:
                self.last_partial = text
                self._later(STTEvent("partial", text, audio_ms=seg.position_ms))
        elif what == "paused":
            self._later(STTEvent("paused", self._text_at_pause(), audio_ms=seg.speech_end_ms))
        elif what == "resumed":
            self._later(STTEvent("resumed", audio_ms=seg.position_ms - FRAME_MS))
        elif what == "stopped":
            self._finish_utterance()

    def _finish_utterance(self) -> None:
        end = self.segmenter.speech_end_ms
        self.queue.put_nowait(STTEvent("speech_stopped", audio_ms=end))
        self._later(STTEvent("final", self.mock.transcript, audio_ms=end))

    async def flush(self) -> None:
        if self.segmenter.in_speech:
            self.segmenter.end()
            self._finish_utterance()

    async def events(self) -> AsyncIterator[STTEvent]:
        while True:
            event = await self.queue.get()
            if event is None:
                return
            yield event

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for handle in self.timers:
            handle.cancel()
        self.queue.put_nowait(None)
        self.owner.streams.discard(self)


class MockSTT(STTProvider):
    backend = "mock"
    is_mock = True
    capabilities = Capabilities(live_streams=True)

    def __init__(self, settings: STTConfig, *, model_id: str = "mock-stt") -> None:
        super().__init__(model_id=model_id)
        self.settings = settings
        self.streams: set[MockSTTStream] = set()

    async def open_stream(
        self, *, sample_rate: int, request_id: str, end_of_turn: EndOfTurn | None = None
    ) -> STTStream:
        stream = MockSTTStream(self.settings, self.settings.mock, sample_rate, self, end_of_turn)
        self.streams.add(stream)
        return stream

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        return "".join([s.text async for s in self.transcribe_segments(samples, sample_rate)])

    async def transcribe_segments(self, samples: np.ndarray, sample_rate: int) -> AsyncIterator[Segment]:
        """The placeholder transcript once, from the first voiced frame to the last, its
        characters spread evenly over that time (so word timestamps have something to show)."""
        await asyncio.sleep(self.settings.mock.decode_delay_ms / 1000)
        frame = max(int(sample_rate * FRAME_MS / 1000), 1)
        usable = samples[: samples.size - samples.size % frame].reshape(-1, frame)
        voiced = np.flatnonzero(np.sqrt(np.mean(np.square(usable), axis=1)) >= self.settings.mock.energy_threshold) \
            if usable.size else np.zeros(0, dtype=np.int64)
        text = self.settings.mock.transcript
        if not voiced.size or not text:
            return
        start, end = float(voiced[0]) * FRAME_MS / 1000, float(voiced[-1] + 1) * FRAME_MS / 1000
        tokens = tuple(text)
        step = (end - start) / len(tokens)
        yield Segment(text, round(start, 3), round(end, 3), tokens=tokens,
                      token_starts=tuple(round(start + i * step, 3) for i in range(len(tokens))), speech_s=end - start)

    def live_streams(self) -> int:
        return len(self.streams)
