"""The LLM interface: stream text deltas for a chat; cancelling the stream aborts the request."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from monolith.providers.base import Provider

Role = Literal["system", "developer", "user", "assistant"]


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    content: str


@dataclass(frozen=True)
class SamplingOptions:
    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    reasoning_effort: str | None = None  # gpt-oss: low/medium/high; None = the configured one
    ignore_eos: bool = False  # generate max_tokens whatever the model says (benchmarks)


@dataclass(frozen=True)
class LLMChunk:
    """New text (only what the user may see or hear), and on the last chunk why it ended."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LLMProvider(Provider):
    kind: ClassVar[str] = "llm"

    @abstractmethod
    def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        """Yield deltas. Closing or cancelling the iterator must abort the engine request."""

    @abstractmethod
    def running_requests(self) -> int:
        """Requests the engine still holds (tests check aborts with it)."""

    def in_flight(self) -> int:
        return self.running_requests()
