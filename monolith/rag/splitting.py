"""Split a document into overlapping chunks along Japanese and English sentence boundaries.

Sentences end at 。！？ (and their closing brackets), at . ! ? followed by a space, and at blank
lines. Sentences are packed into chunks of at most `size` characters; the next chunk repeats
the last sentences of the previous one, up to `overlap` characters, so a fact that straddles
a boundary is still found whole. A sentence longer than `size` is cut at commas, spaces, or
finally at `size`."""

from __future__ import annotations

import re

# A sentence ends after: Japanese/full-width enders (+ closing brackets/quotes), or Latin enders
# followed by whitespace, or a paragraph break.
_SENTENCE_END = re.compile(
    r"(?<=[。！？!?．])[」』）)\"'”’]*+\s*+(?![とっ])"  # 「本当？」と聞いた is one sentence
    r"|(?<=[.!?])[\"'”’)\]]*\s+"
    r"|\n\s*\n\s*"
)
_ABBREVIATION = re.compile(r"(?:^|\s)(?:Mr|Mrs|Ms|Dr|Prof|St|Jr|vs|etc|e\.g|i\.e|No|Fig)\.$", re.IGNORECASE)
_SOFT_BREAK = re.compile(r"(?<=[、，,；;：:])|(?<=\s)")


def sentences(text: str) -> list[str]:
    parts: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end > start:
            piece = text[start:end].strip()
            if piece and parts and _ABBREVIATION.search(parts[-1]):
                parts[-1] += " " + piece  # "Mr." does not end a sentence
            elif piece:
                parts.append(piece)
        start = end
    tail = text[start:].strip()
    if tail:
        parts.append(tail)
    return parts


def _cut_long(sentence: str, size: int) -> list[str]:
    """A sentence longer than `size`, cut at the last comma or space that fits, else hard."""
    pieces = []
    rest = sentence
    while len(rest) > size:
        window = rest[: size + 1]
        cuts = [m.start() for m in _SOFT_BREAK.finditer(window) if 0 < m.start() <= size]
        cut = cuts[-1] if cuts and cuts[-1] >= size // 2 else size
        pieces.append(rest[:cut].strip())
        rest = rest[cut:].strip()
    if rest:
        pieces.append(rest)
    return [p for p in pieces if p]


def _join(parts: list[str]) -> str:
    out = ""
    for part in parts:
        # Latin text needs a space between sentences; Japanese does not.
        if out and (out[-1].isascii() or part[0].isascii()):
            out += " "
        out += part
    return out


def split_text(text: str, *, size: int, overlap: int) -> list[str]:
    if size < 1:
        raise ValueError("chunk size must be positive")
    overlap = max(0, min(overlap, size // 2))
    units: list[str] = []
    for sentence in sentences(text):
        units.extend(_cut_long(sentence, size) if len(sentence) > size else [sentence])
    chunks: list[str] = []
    current: list[str] = []
    length = 0
    fresh = 0  # sentences in `current` that no earlier chunk holds
    for unit in units:
        if current and length + len(unit) + 1 > size:
            chunks.append(_join(current))
            # carry the tail sentences (up to `overlap` characters) into the next chunk
            carried: list[str] = []
            carried_len = 0
            for prev in reversed(current):
                if carried_len + len(prev) + 1 > overlap:
                    break
                carried.insert(0, prev)
                carried_len += len(prev) + 1
            # never let the carried part plus this unit exceed the size
            while carried and carried_len + len(unit) + 1 > size:
                carried_len -= len(carried.pop(0)) + 1
            current, length, fresh = carried, carried_len, 0
        current.append(unit)
        length += len(unit) + 1
        fresh += 1
    if current and fresh:
        chunks.append(_join(current))
    return chunks
