"""Split a document into overlapping chunks along Japanese and English sentence boundaries.

Where sentences end is monolith.text's rule (the one the TTS chunker uses): 。！？ and . ! ?
with their closing brackets, never inside 「」 or after an abbreviation, and at blank lines
(a document's single line breaks are only wrapping). Sentences are packed into chunks of at most `size` characters; the next chunk repeats
the last sentences of the previous one, up to `overlap` characters, so a fact that straddles
a boundary is still found whole. A sentence longer than `size` is cut at commas, spaces, or
finally at `size`."""

from __future__ import annotations

import re

from monolith.text import join_texts, sentences

_SOFT_BREAK = re.compile(r"(?<=[、，,；;：:])|(?<=\s)")


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
            chunks.append(join_texts(current))
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
        chunks.append(join_texts(current))
    return chunks
