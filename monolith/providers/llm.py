"""The LLM interface: stream deltas for a chat; cancelling the stream aborts the request.

Tool calling is part of the interface, in OpenAI's terms, so a chat route and a voice session
share one path: the caller declares `FunctionTool`s and a `ToolChoice` in `SamplingOptions`;
the model's call comes back as `ToolCallDelta`s (the first with the call's id and function name,
then pieces of its JSON arguments); the caller runs the function and sends the conversation
back with the assistant's `ToolCall`s and a `tool` message holding the result for each call id,
and the model continues. `collect_tool_calls` turns the deltas into whole calls."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from monolith.providers.base import Provider

Role = Literal["system", "developer", "user", "assistant", "tool"]


@dataclass(frozen=True)
class ToolCall:
    """A function call the model made: `arguments` is JSON text, as the model wrote it."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class ChatMessage:
    role: Role
    # None for an assistant message that only calls tools.
    content: str | None
    tool_calls: tuple[ToolCall, ...] = ()  # assistant: the calls it made
    tool_call_id: str | None = None  # tool: the call this message answers

    @property
    def text(self) -> str:
        return self.content or ""


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call; `parameters` is its arguments' JSON schema."""

    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None
    strict: bool | None = None  # True: the arguments are constrained to the schema


@dataclass(frozen=True)
class NamedFunction:
    """`tool_choice` naming the one function the model must call."""

    name: str


ToolChoice = Literal["auto", "none", "required"] | NamedFunction


@dataclass(frozen=True)
class ResponseFormat:
    """Structured output: any JSON object, or JSON valid for `schema`."""

    type: Literal["json_object", "json_schema"]
    schema: dict[str, Any] | None = None
    name: str = "response"
    strict: bool | None = None


@dataclass(frozen=True)
class SamplingOptions:
    """How to generate (and what may be generated: tools, a JSON format, log-probabilities)."""

    max_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    reasoning_effort: str | None = None  # gpt-oss: low/medium/high; None = the configured one
    ignore_eos: bool = False  # generate max_tokens whatever the model says (benchmarks)
    tools: tuple[FunctionTool, ...] = ()
    tool_choice: ToolChoice = "auto"  # with no tools: nothing to call
    parallel_tool_calls: bool = True
    response_format: ResponseFormat | None = None
    logprobs: bool = False
    top_logprobs: int = 0  # alternatives per token (with logprobs)

    @property
    def calls_tools(self) -> bool:
        """Whether the model may (or must) call one of the tools."""
        return bool(self.tools) and self.tool_choice != "none"


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    bytes: tuple[int, ...] | None = None  # the token's UTF-8 bytes
    top: tuple[TokenLogprob, ...] = ()  # the most likely tokens at this position (top_logprobs)


@dataclass(frozen=True)
class ToolCallDelta:
    """A piece of a tool call: the first for a call carries its id and name, later ones more of
    its arguments; `index` tells the calls of one answer apart."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True)
class LLMChunk:
    """New text (only what the user may see or hear), tool-call pieces, the log-probabilities of
    the text's tokens when asked; on the last chunk why it ended ("tool_calls" when the model
    called a tool)."""

    text: str
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    tool_calls: tuple[ToolCallDelta, ...] = ()
    logprobs: tuple[TokenLogprob, ...] = ()


def collect_tool_calls(deltas: Iterable[ToolCallDelta]) -> tuple[ToolCall, ...]:
    """Whole calls from their pieces, in index order."""
    calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]
    for delta in deltas:
        call = calls.setdefault(delta.index, ["", "", ""])
        call[0] = delta.id or call[0]
        call[1] = delta.name or call[1]
        call[2] += delta.arguments
    return tuple(ToolCall(id=c[0], name=c[1], arguments=c[2]) for _, c in sorted(calls.items()))


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
