"""Per-turn latency on monotonic clocks, and the audio clock that anchors it to received audio."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any


def now() -> float:
    return time.perf_counter()


class AudioClock:
    """Maps a position in the session's input audio to the moment the server received it."""

    def __init__(self) -> None:
        self.position_ms = 0.0
        self._marks: deque[tuple[float, float]] = deque(maxlen=4096)  # (audio end ms, received at)

    def add(self, samples: int, sample_rate: int) -> None:
        self.position_ms += samples * 1000.0 / sample_rate
        self._marks.append((self.position_ms, now()))

    def received_at(self, audio_ms: float) -> float:
        """When the frame holding `audio_ms` arrived. A position on a frame boundary belongs to the
        frame that starts there (speech after a pause starts in the first new frame, not in the
        last one before the pause)."""
        for end_ms, at in self._marks:
            if end_ms > audio_ms:
                return at
        return now()

    def reset(self) -> None:
        self.position_ms = 0.0
        self._marks.clear()


def _ms(later: float | None, earlier: float | None) -> float | None:
    return round((later - earlier) * 1000, 2) if later is not None and earlier is not None else None


@dataclass
class TurnTiming:
    """Timestamps of one turn. Reference points: speech start (partials), speech end (the rest)."""

    speech_start: float | None = None
    first_partial: float | None = None
    speech_end: float | None = None
    final: float | None = None
    llm_request: float | None = None
    llm_first_token: float | None = None
    first_chunk_ready: float | None = None
    tts_request: float | None = None
    tts_first_audio: float | None = None
    audio_sent: float | None = None  # the first audio actually sent to the client
    preemptive: bool = False  # the answer was started at a pause, before the turn ended
    extra: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, float | bool | None]:
        provider_ms = None
        if None not in (self.llm_request, self.first_chunk_ready, self.tts_request, self.tts_first_audio):
            # On the critical path: the LLM producing the first speakable chunk, then TTS
            # producing its first audio. Everything else between final and audio is ours.
            provider_ms = _ms(self.first_chunk_ready, self.llm_request) + _ms(self.tts_first_audio, self.tts_request)  # type: ignore[operator]
        since_final = _ms(self.audio_sent, self.final)
        overhead = round(since_final - provider_ms, 2) if since_final is not None and provider_ms is not None else None
        first_audio = _ms(self.audio_sent, self.speech_end)
        return {
            "partial_ms": _ms(self.first_partial, self.speech_start),
            "final_ms": _ms(self.final, self.speech_end),
            "llm_first_token_ms": _ms(self.llm_first_token, self.speech_end),
            "tts_start_ms": first_audio,
            "provider_ms": provider_ms,
            # a preemptive answer's providers worked before the final: nothing to split
            "pipeline_overhead_ms": None if self.preemptive else overhead,
            "end_of_speech_to_first_audio_ms": first_audio,  # what the user waits for (= tts_start_ms)
            "preemptive": self.preemptive,
        }
