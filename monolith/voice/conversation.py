"""A session's conversation: what each side said, kept to what the listener actually heard.

An answer is spoken chunk by chunk; each chunk's place in the output audio is recorded, so when
a client says how much it played (`conversation.item.truncate` / `response.truncate`, in audio
milliseconds) the answer in the history is cut to that point, not to whole chunks.

Tool calls: an answer that called tools is an assistant message with its `tool_calls` (and the
text spoken before them, if any); each result is a `tool` message placed right after its call,
whenever it arrives. What the LLM is shown (`prompt`) leaves out calls still waiting for their
result."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from monolith.errors import InvalidRequest
from monolith.providers.llm import ChatMessage, ToolCall
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

    def remember(self, user_text: str, response_id: str, answer: str, calls: tuple[ToolCall, ...] = (),
                 results: Mapping[str, str] | None = None) -> None:
        """A turn: the user's words, the answer as heard and the calls it made (with the results
        that came back while it was still running)."""
        if user_text:
            self.messages.append(ChatMessage("user", user_text))
        if answer or calls:
            message = ChatMessage("assistant", answer or None, tool_calls=calls)
            self.messages.append(message)
            self._answers[response_id] = message
            results = results or {}
            self.messages.extend(ChatMessage("tool", results[c.id], tool_call_id=c.id) for c in calls if c.id in results)
        self._trim()

    def add_tool_result(self, call_id: str, output: str) -> None:
        """The result of a call in the history, placed after the call (and its other results)."""
        at = next((i for i, m in enumerate(self.messages) if any(c.id == call_id for c in m.tool_calls)), None)
        if at is None:
            raise InvalidRequest(f"no function call {call_id!r} in the conversation (only recent calls are kept)",
                                 code="unknown_call_id", param="call_id")
        end = at + 1
        while end < len(self.messages) and self.messages[end].role == "tool":
            if self.messages[end].tool_call_id == call_id:
                raise InvalidRequest(f"function call {call_id!r} has its output already", code="duplicate_call_output",
                                     param="call_id")
            end += 1
        self.messages.insert(end, ChatMessage("tool", output, tool_call_id=call_id))
        self._trim()

    def prompt(self) -> list[ChatMessage]:
        """The history as the LLM is shown it: calls still waiting for a result left out."""
        answered = {m.tool_call_id for m in self.messages if m.role == "tool"}
        shown = []
        for message in self.messages:
            if any(c.id not in answered for c in message.tool_calls):
                calls = tuple(c for c in message.tool_calls if c.id in answered)
                if not calls and not message.content:
                    continue
                message = ChatMessage("assistant", message.content, tool_calls=calls)
            shown.append(message)
        return shown

    def _trim(self) -> None:
        """Keep the last `history_turns` exchanges; tool results count with their call."""
        budget = self.history_turns * 2
        start = len(self.messages)
        while start > 0 and budget > 0:
            start -= 1
            budget -= self.messages[start].role != "tool"
        while start < len(self.messages) and self.messages[start].role == "tool":  # results whose call went
            start += 1
        self.messages = self.messages[start:]
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
            if heard or old.tool_calls:  # the calls were made, however little was heard
                self.messages[index] = self._answers[response_id] = ChatMessage("assistant", heard or None,
                                                                                tool_calls=old.tool_calls)
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
