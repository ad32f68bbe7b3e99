"""The STT interface: a streaming session per voice session; feed PCM, read VAD and text events."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np

from monolith.providers.base import Provider
from monolith.turn_end import EndOfTurn

# speech_stopped and final end a turn (after the end-of-turn silence). paused and resumed come
# only with an EndOfTurn that has pause_ms, are for the session alone (clients never see them),
# and fall inside a turn: paused after pause_ms of silence, with the transcript as it stands;
# resumed when speech returns before the turn ended.
STTEventKind = Literal["speech_started", "speech_stopped", "partial", "final", "paused", "resumed"]


@dataclass(frozen=True)
class STTEvent:
    kind: STTEventKind
    text: str = ""
    # Position in the stream's audio (ms since the stream opened) the event refers to:
    # speech onset for speech_started and resumed, end of speech for speech_stopped, final and paused.
    audio_ms: float = 0.0


@dataclass(frozen=True)
class Segment:
    """One utterance of a whole-file transcription, with what the recognizer knows about it.

    Times are seconds from the start of the file. The per-token tuples are empty when the model
    does not give them; when present they have one entry per token."""

    text: str
    start_s: float
    end_s: float
    tokens: tuple[str, ...] = ()  # the recognizer's own token strings
    token_ids: tuple[int, ...] = ()  # their ids in the model's vocabulary (tokens.txt)
    token_starts: tuple[float, ...] = ()  # when each token was emitted
    logprobs: tuple[float, ...] = ()  # each token's log-probability
    speech_s: float | None = None  # how much of the segment the VAD heard as speech; None: not measured


class STTStream(ABC):
    """One live stream. `feed` never blocks the loop; events arrive on `events()`."""

    @abstractmethod
    async def feed(self, samples: np.ndarray) -> None:
        """Float32 mono samples in [-1, 1] at the rate the stream was opened with."""

    @abstractmethod
    def events(self) -> AsyncIterator[STTEvent]:
        """Events in order; ends after `close`."""

    @abstractmethod
    async def flush(self) -> None:
        """End of the current utterance from outside (e.g. client commit): emit its final."""

    @abstractmethod
    async def close(self) -> None: ...


class STTProvider(Provider):
    kind: ClassVar[str] = "stt"

    @abstractmethod
    async def open_stream(
        self, *, sample_rate: int, request_id: str, end_of_turn: EndOfTurn | None = None
    ) -> STTStream:
        """A live stream; `end_of_turn` None: the provider's fixed end-of-turn rule, no pauses."""

    @abstractmethod
    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        """Whole-file recognition for the transcription API."""

    async def transcribe_stream(self, samples: np.ndarray, sample_rate: int) -> AsyncIterator[str]:
        """Whole-file recognition as text deltas (they concatenate to `transcribe`'s text)."""
        text = await self.transcribe(samples, sample_rate)
        if text:
            yield text

    async def transcribe_segments(self, samples: np.ndarray, sample_rate: int) -> AsyncIterator[Segment]:
        """Whole-file recognition as segments (verbose_json). Engines that know where utterances
        are say so; this default is one segment over the whole file."""
        text = await self.transcribe(samples, sample_rate)
        if text:
            yield Segment(text, 0.0, samples.size / sample_rate)

    def live_streams(self) -> int:
        return 0

    def in_flight(self) -> int:
        return self.live_streams()
