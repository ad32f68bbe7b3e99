"""`response_format=verbose_json`: OpenAI's (Whisper's) segment and word fields, computed from
what the recognizer gives. What is approximate, and how (docs/engines.md says the same):

- `start`/`end`: from the first to the last speech the VAD heard in the utterance (or its first
  and last token), within the audio the recognizer decoded it from.
- `seek`: the segment's start in 10 ms frames (Whisper counts its 30 s windows in those).
- `tokens`: the recognizer's token ids (its tokens.txt); empty when its tokens cannot be mapped.
- `temperature`: 0.0 (greedy or beam search: nothing is sampled).
- `avg_logprob`: the mean of the tokens' log-probabilities; 0.0 when the model gives none.
- `compression_ratio`: as Whisper computes it (UTF-8 bytes over zlib-compressed bytes).
- `no_speech_prob`: 0.0 when the VAD heard at least `[stt] vad_min_speech_ms` of speech in the
  segment, rising to 1.0 when it heard none (text the model made of noise); 0.0 when not measured.
- `words`: tokens grouped into words (a word begins at a SentencePiece `▁` or a space, and every
  CJK, kana, hangul or Thai character is a word), each from its first token's emission time to
  the next word's start (the last to the segment's end): transducers give the time a token was
  emitted, not its span."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any

from monolith.providers.stt import Segment

GRANULARITIES = ("word", "segment")
# Scripts written without spaces: each character is a word.
_UNSPACED = ((0x0E00, 0x0E7F), (0x3040, 0x30FF), (0x3400, 0x4DBF), (0x4E00, 0x9FFF), (0xAC00, 0xD7AF),
             (0xF900, 0xFAFF), (0x20000, 0x2FA1F))


def _unspaced(text: str) -> bool:
    return any(lo <= ord(ch) <= hi for ch in text for lo, hi in _UNSPACED)


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return round(len(data) / len(zlib.compress(data)), 4) if data else 0.0


def no_speech_prob(segment: Segment, min_speech_s: float) -> float:
    if segment.speech_s is None:
        return 0.0
    if min_speech_s <= 0:
        return 0.0 if segment.speech_s > 0 else 1.0
    return round(min(1.0, max(0.0, 1.0 - segment.speech_s / min_speech_s)), 3)


def segment_fields(index: int, segment: Segment, min_speech_s: float) -> dict[str, Any]:
    probs = segment.logprobs
    return {
        "id": index, "seek": round(segment.start_s * 100), "start": segment.start_s, "end": segment.end_s,
        "text": segment.text, "tokens": list(segment.token_ids), "temperature": 0.0,
        "avg_logprob": round(sum(probs) / len(probs), 4) if probs else 0.0,
        "compression_ratio": compression_ratio(segment.text),
        "no_speech_prob": no_speech_prob(segment, min_speech_s),
    }


def has_word_times(segment: Segment) -> bool:
    return bool(segment.tokens) and len(segment.token_starts) == len(segment.tokens)


def words(segment: Segment) -> list[dict[str, Any]]:
    """The segment's words with times (it must have token times: `has_word_times`)."""
    found: list[list[Any]] = []  # [text, start]
    boundary = True
    for token, start in zip(segment.tokens, segment.token_starts, strict=True):
        piece = token.replace("\u2581", " ")
        if not piece.strip():
            boundary = True  # a lone `▁` or space: the next token starts a word
            continue
        if boundary or piece[0].isspace() or _unspaced(piece) or _unspaced(found[-1][0][-1]):
            found.append([piece.strip(), start])
        else:
            found[-1][0] += piece.rstrip()
        boundary = piece[-1].isspace()
    ends = [start for _, start in found[1:]] + [segment.end_s]
    return [{"word": text, "start": start, "end": max(start, end)} for (text, start), end in zip(found, ends, strict=True)]


def verbose_body(segments: Sequence[Segment], *, text: str, language: str, duration: float, granularities: Sequence[str],
                 min_speech_s: float) -> dict[str, Any]:
    body: dict[str, Any] = {"task": "transcribe", "language": language, "duration": round(duration, 3), "text": text}
    if "word" in granularities:
        body["words"] = [w for s in segments for w in words(s)]
    if "segment" in granularities or not granularities:
        body["segments"] = [segment_fields(i, s, min_speech_s) for i, s in enumerate(segments)]
    body["usage"] = {"type": "duration", "seconds": round(duration, 3)}
    return body
