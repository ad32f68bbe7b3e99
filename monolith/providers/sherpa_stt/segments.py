"""A whole-file transcription's utterances as `Segment`s: where each one is, its token ids and
times, their log-probabilities, and how much of it the VAD heard as speech.

sherpa-onnx gives, per result, the token strings, the time each token was emitted (relative to
where the stream last started) and each token's log-probability (`ys_log_probs` offline,
`ys_probs` streaming: both are log-probabilities). Runs on the STT executor."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monolith.providers.stt import Segment


def read_symbols(path: Path) -> dict[str, int]:
    """tokens.txt (`symbol id` per line) as symbol -> id. Files that encode symbols otherwise
    (Whisper's base64) simply match nothing, and their segments carry no token ids."""
    table: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        symbol, _, number = line.rpartition(" ")
        if symbol and number.isdigit():
            table.setdefault(symbol, int(number))
    return table


@dataclass
class Speech:
    """Where the VAD heard speech in the file so far, in seconds; `onset` is an interval still open."""

    intervals: list[tuple[float, float]] = field(default_factory=list)
    onset: float | None = None

    def add(self, kind: str, at_s: float) -> None:
        if kind == "started":
            self.onset = at_s
        elif self.onset is not None:
            self.intervals.append((self.onset, at_s))
            self.onset = None

    def _spans(self, until: float) -> list[tuple[float, float]]:
        return [*self.intervals, *([(self.onset, until)] if self.onset is not None else [])]

    def within(self, start: float, end: float) -> list[tuple[float, float]]:
        """The speech inside [start, end], clipped to it."""
        return [(max(a, start), min(b, end)) for a, b in self._spans(end) if b > start and a < end]


def _floats(values: Any, count: int) -> tuple[float, ...]:
    found = tuple(float(v) for v in values) if values is not None else ()
    return found if len(found) == count else ()


def segment_of(result: Any, *, offset_s: float, window: tuple[float, float], symbols: dict[str, int],
               speech: Speech | None) -> Segment | None:
    """One recognizer result as a segment, or None when it holds no text.

    `offset_s` is where the result's token times count from; `window` the stretch of audio the
    result was decoded from. The segment runs from the first speech (or token) in the window to
    the last, never outside it."""
    text = str(result.text).strip()
    if not text:
        return None
    tokens = tuple(str(t) for t in result.tokens)
    times = _floats(getattr(result, "timestamps", None), len(tokens))
    starts = tuple(round(offset_s + t, 3) for t in times)
    probs = _floats(getattr(result, "ys_log_probs", None) or getattr(result, "ys_probs", None), len(tokens))
    ids = tuple(symbols[t] for t in tokens) if tokens and all(t in symbols for t in tokens) else ()
    low, high = window
    heard = speech.within(low, high) if speech is not None else []
    start = min([*(a for a, _ in heard[:1]), *starts[:1]], default=low)
    end = max([*(b for _, b in heard[-1:]), *(s + 0.04 for s in starts[-1:])], default=high)
    start, end = max(low, start), min(high, max(end, start))
    speech_s = sum(b - a for a, b in heard) if speech is not None else None
    return Segment(text, round(start, 3), round(end, 3), tokens, ids, starts, probs,
                   round(speech_s, 3) if speech_s is not None else None)
