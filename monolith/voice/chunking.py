"""Cut streaming LLM text into speakable chunks at sentence ends (monolith.text decides where
sentences end, for Japanese and English, as it does for RAG).

The first chunk has a lower length cap so the first audio starts sooner; later chunks can be
longer (their audio queues behind what is already playing)."""

from __future__ import annotations

from dataclasses import dataclass, field

from monolith.text import sentence_ends

PAUSES = set("、，,；;：:")  # cut here first when a chunk runs long
SPACES = set(" \t")


@dataclass
class SentenceChunker:
    min_chars: int = 8
    max_chars: int = 120
    first_max_chars: int = 40
    buffer: str = ""
    emitted: int = 0
    whole: bool = False  # the text is complete (split), not a stream still arriving
    _out: list[str] = field(default_factory=list)

    def split(self, text: str) -> list[str]:
        """A whole text, not a stream: every sentence end is certain, and a long first sentence is
        cut early only at a pause (a cut between two words of a short sentence costs its prosody:
        "...the lazy" | "dog." is heard as "doug")."""
        self.whole = True
        chunks = self.push(text)
        rest = self.flush()
        return chunks + ([rest] if rest else [])

    @property
    def _limit(self) -> int:
        return self.first_max_chars if self.emitted == 0 else self.max_chars

    def push(self, text: str) -> list[str]:
        """Add streamed text; return the chunks that are complete now."""
        self.buffer += text
        self._out = []
        while self._cut_once():
            pass
        return self._out

    def flush(self) -> str | None:
        """The rest, at the end of the response."""
        rest, self.buffer = self.buffer.strip(), ""
        if rest:
            self.emitted += 1
        return rest or None

    def _cut_once(self) -> bool:
        end = self._sentence_end()
        limit = self._limit
        if end is not None and len(self.buffer[:end].strip()) <= limit:
            return self._emit(end)
        if len(self.buffer) <= limit:
            return False
        # Too long for one chunk: cut at a pause, else a space, else hard. A whole text's first
        # sentence that fits max_chars is cut only at a pause.
        sentence = end if end is not None else len(self.buffer)
        gentle = self.whole and self.emitted == 0 and sentence <= self.max_chars
        window = self.buffer[:limit]
        for breaks in (PAUSES,) if gentle else (PAUSES, SPACES):
            cut = max((i for i, ch in enumerate(window) if ch in breaks and i + 1 >= self.min_chars), default=-1)
            if cut >= 0:
                return self._emit(cut + 1)
        return self._emit(sentence if gentle else limit)

    def _sentence_end(self) -> int | None:
        """Index just past the first sentence end that leaves a chunk of at least min_chars."""
        for end in sentence_ends(self.buffer, final=self.whole, line_breaks=True):
            if len(self.buffer[:end].strip()) >= self.min_chars:
                return end
        return None

    def _emit(self, end: int) -> bool:
        chunk, self.buffer = self.buffer[:end].strip(), self.buffer[end:]
        if chunk:
            self._out.append(chunk)
            self.emitted += 1
        return True
