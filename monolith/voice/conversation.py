"""A session's conversation: what each side said, kept to what the listener actually heard.

An answer is spoken chunk by chunk; each chunk's place in the output audio is recorded, so when
a client says how much it played (`conversation.item.truncate` / `response.truncate`, in audio
milliseconds) the answer in the history is cut to that point, not to whole chunks."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from monolith.providers.llm import ChatMessage
from monolith.text import join_texts

KEEP_AUDIO_LAYOUTS = 16  # answers whose audio layout is kept for truncation


@dataclass
class SpokenChunk:
    text: str
    start: int  # first output sample of this chunk's audio
    samples: int = 0


@dataclass
class Conversation:
    history_turns: int
    messages: list[ChatMessage] = field(default_factory=list)
    _answers: dict[str, ChatMessage] = field(default_factory=dict)
    _layouts: OrderedDict[str, list[SpokenChunk]] = field(default_factory=OrderedDict)

    def remember(self, user_text: str, response_id: str, answer: str) -> None:
        if user_text:
            self.messages.append(ChatMessage("user", user_text))
        if answer:
            message = ChatMessage("assistant", answer)
            self.messages.append(message)
            self._answers[response_id] = message
        keep = self.history_turns * 2
        self.messages = self.messages[-keep:] if keep else []
        live = {id(m) for m in self.messages}
        self._answers = {rid: m for rid, m in self._answers.items() if id(m) in live}

    def layout(self, response_id: str) -> list[SpokenChunk]:
        """Where each chunk of an answer sits in its audio (filled in as the audio goes out)."""
        chunks = self._layouts.setdefault(response_id, [])
        while len(self._layouts) > KEEP_AUDIO_LAYOUTS:
            self._layouts.popitem(last=False)
        return chunks

    def truncate(self, response_id: str, audio_end_ms: float, sample_rate: int) -> str | None:
        """Cut the answer to what was heard by `audio_end_ms`; the new text (None: unknown id)."""
        chunks = self._layouts.get(response_id)
        if chunks is None:
            return None
        heard = heard_text(chunks, int(audio_end_ms * sample_rate / 1000))
        old = self._answers.get(response_id)
        if old is not None:
            index = next(i for i, m in enumerate(self.messages) if m is old)
            if heard:
                self.messages[index] = self._answers[response_id] = ChatMessage("assistant", heard)
            else:
                del self.messages[index]
                del self._answers[response_id]
        return heard


def heard_text(chunks: list[SpokenChunk], cut: int) -> str:
    """The text of the chunks up to output sample `cut`; a chunk heard in part is cut by the share
    of its audio that was played, back to a word boundary (a whole character in Japanese)."""
    parts = []
    for chunk in chunks:
        if chunk.start >= cut:
            break
        if chunk.start + chunk.samples <= cut or chunk.samples == 0:
            parts.append(chunk.text)
            continue
        share = (cut - chunk.start) / chunk.samples
        end = int(len(chunk.text) * share)
        if chunk.text[:end].isascii() and " " in chunk.text[:end]:
            end = chunk.text[:end].rfind(" ")
        if chunk.text[:end].strip():
            parts.append(chunk.text[:end].rstrip())
        break
    return join_texts(parts)
