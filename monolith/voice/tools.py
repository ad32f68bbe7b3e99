"""Tool calling in a voice session: the tools a session offers, the calls a response makes, and
the results that come back.

The session declares function tools (`session.update`: `tools`, `tool_choice`, the Realtime API's
flat shape on both transports). A response's LLM request carries them; when the model calls one,
each piece of the call goes out as it streams (`ResponseFunctionCallDelta`) and the whole call
when the LLM is done (`ResponseFunctionCall`), while any text the model said before it is spoken
as usual. The history records the assistant's call; the result, whoever runs the tool (the client
today; a tool of the server's own would use the same `add_tool_result`), is recorded as a `tool`
message right after its call, and the next response, asked for as usual, answers with it.

Nothing waits for a result: the response that called ends, the session goes on taking audio and
turns, other sessions never notice. A call whose result has not come yet stays in the history
but is left out of what the LLM is shown (a chat answers every call it shows), until its result
arrives."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from monolith.errors import InvalidRequest
from monolith.providers.llm import (
    FunctionTool,
    NamedFunction,
    SamplingOptions,
    ToolCall,
    ToolCallDelta,
    ToolChoice,
)
from monolith.voice.conversation import Conversation
from monolith.voice.events import ResponseFunctionCallDelta

MAX_TOOLS = 128
MAX_OUTPUT_CHARS = 32_000  # a tool's result (the LLM's context bounds it further)


class SessionTool(BaseModel):
    """A function the model may call: the Realtime API's `RealtimeFunctionTool`, and `strict`
    (monolith's, as in the chat API: true pins the arguments to the schema with the engine's
    structured outputs; unset, `llm.tool_strict_level` decides)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["function"] = "function"
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None  # the arguments' JSON schema
    strict: bool | None = None

    @model_serializer(mode="wrap")
    def _without_unset_strict(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        out: dict[str, Any] = handler(self)
        if out.get("strict") is None:
            out.pop("strict", None)  # not a Realtime field: only echoed when a client set it
        return out


class FunctionChoice(BaseModel):
    """`tool_choice` naming the one function to call (`{"type": "function", "name": ...}`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["function"]
    name: str


SessionToolChoice = Literal["auto", "none", "required"] | FunctionChoice


def check_tools(tools: Sequence[SessionTool], choice: SessionToolChoice, *, prefix: str = "") -> None:
    """What the types cannot say: names unique, a forced choice has something to call."""
    names = [t.name for t in tools]
    if len(names) > MAX_TOOLS:
        raise InvalidRequest(f"at most {MAX_TOOLS} tools", code="invalid_value", param=f"{prefix}tools")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise InvalidRequest(f"tool name {twice[0]!r} is declared twice", code="invalid_value", param=f"{prefix}tools")
    if choice == "required" and not names:
        raise InvalidRequest('tool_choice "required" needs tools', code="invalid_value", param=f"{prefix}tool_choice")
    if isinstance(choice, FunctionChoice) and choice.name not in names:
        raise InvalidRequest(f"tool_choice names {choice.name!r}, which is not one of the tools",
                             code="invalid_value", param=f"{prefix}tool_choice")


@dataclass
class ResponseTools:
    """One response's tools: what it may call, the calls it made, results that came while it ran."""

    offered: tuple[SessionTool, ...] = ()
    choice: SessionToolChoice = "auto"
    parallel: bool = True  # several calls in one response
    calls: tuple[ToolCall, ...] = ()
    results: dict[str, str] = field(default_factory=dict)  # call id -> output
    answer_after: bool = False  # a result asked for an answer: it starts when this response ends

    def sampling(self, base: SamplingOptions) -> SamplingOptions:
        if not self.offered:
            return base
        tools = tuple(FunctionTool(t.name, t.description or "", t.parameters, t.strict) for t in self.offered)
        choice: ToolChoice = NamedFunction(self.choice.name) if isinstance(self.choice, FunctionChoice) else self.choice
        return replace(base, tools=tools, tool_choice=choice, parallel_tool_calls=self.parallel)

    def made(self, call_id: str) -> bool:
        return any(c.id == call_id for c in self.calls)


class CallCollector:
    """The pieces of a response's calls as they stream: each becomes an event; together, the
    whole calls (a call the engine gave no id gets one)."""

    def __init__(self, response_id: str) -> None:
        self.response_id = response_id
        self._calls: dict[int, list[str]] = {}  # index -> [id, name, arguments]

    def push(self, piece: ToolCallDelta) -> ResponseFunctionCallDelta:
        call = self._calls.get(piece.index)
        if call is None:
            call = self._calls[piece.index] = [piece.id or f"call_{uuid.uuid4().hex[:24]}", piece.name or "", ""]
        call[1] = call[1] or piece.name or ""
        call[2] += piece.arguments
        return ResponseFunctionCallDelta(self.response_id, call[0], call[1], piece.arguments)

    def calls(self) -> tuple[ToolCall, ...]:
        return tuple(ToolCall(c[0], c[1], c[2]) for _, c in sorted(self._calls.items()))


def checked_output(output: str) -> str:
    if len(output) > MAX_OUTPUT_CHARS:
        raise InvalidRequest(f"a tool's output is at most {MAX_OUTPUT_CHARS} characters", code="text_too_long",
                             param="output")
    return output


def record_result(running: ResponseTools | None, conversation: Conversation, call_id: str, output: str) -> bool:
    """A call's result: kept with the running response when it made the call (it goes into the
    history with it; True), else placed after its call in the history."""
    output = checked_output(output)
    if running is not None and running.made(call_id):
        if call_id in running.results:
            raise InvalidRequest(f"function call {call_id!r} has its output already", code="duplicate_call_output",
                                 param="call_id")
        running.results[call_id] = output
        return True
    conversation.add_tool_result(call_id, output)
    return False
