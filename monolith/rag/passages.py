"""What retrieval hands to the chat: passages, and how they go into the prompt."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Passage:
    source: str
    text: str
    score: float
    chunk_id: int = 0


class Retriever(Protocol):
    async def search(self, query: str, *, top_k: int | None = None, min_score: float | None = None) -> list[Passage]: ...


def context_message(passages: Sequence[Passage]) -> str:
    """A system message that gives the model the passages, numbered, with their sources."""
    lines = ["Use the following reference passages when they are relevant. Cite nothing aloud."]
    for i, p in enumerate(passages, 1):
        lines.append(f"[{i}] ({p.source}) {p.text}")
    return "\n".join(lines)
