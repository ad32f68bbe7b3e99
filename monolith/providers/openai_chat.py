"""The provider interface's chat, tools and formats in OpenAI's wire shape (dicts), and tool-call
and log-probability deltas back: what vLLM's request model and an OpenAI-compatible server read."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from monolith.providers.llm import (
    ChatMessage,
    FunctionTool,
    NamedFunction,
    ResponseFormat,
    SamplingOptions,
    TokenLogprob,
    ToolCallDelta,
    ToolChoice,
)


def message_dict(message: ChatMessage, *, developer_as_system: bool = True) -> dict[str, Any]:
    # `developer` is OpenAI's newer name for `system`; chat templates know `system`.
    role = "system" if developer_as_system and message.role == "developer" else message.role
    out: dict[str, Any] = {"role": role, "content": message.content}
    if message.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                             for c in message.tool_calls]
    if message.role == "tool":
        out["tool_call_id"] = message.tool_call_id or ""
        out["content"] = message.text
    elif message.content is None and not message.tool_calls:
        out["content"] = ""
    return out


def tool_dict(tool: FunctionTool) -> dict[str, Any]:
    function: dict[str, Any] = {"name": tool.name}
    if tool.description:
        function["description"] = tool.description
    if tool.parameters is not None:
        function["parameters"] = tool.parameters
    if tool.strict is not None:
        function["strict"] = tool.strict
    return {"type": "function", "function": function}


def tool_choice_value(choice: ToolChoice) -> str | dict[str, Any]:
    if isinstance(choice, NamedFunction):
        return {"type": "function", "function": {"name": choice.name}}
    return choice


def response_format_dict(fmt: ResponseFormat) -> dict[str, Any]:
    if fmt.type == "json_object":
        return {"type": "json_object"}
    schema: dict[str, Any] = {"name": fmt.name, "schema": fmt.schema if fmt.schema is not None else {}}
    if fmt.strict is not None:
        schema["strict"] = fmt.strict
    return {"type": "json_schema", "json_schema": schema}


def request_extras(options: SamplingOptions) -> dict[str, Any]:
    """A chat request's tools, tool choice, response format and log-probability fields."""
    extras: dict[str, Any] = {}
    if options.tools:
        extras |= {"tools": [tool_dict(t) for t in options.tools], "tool_choice": tool_choice_value(options.tool_choice),
                   "parallel_tool_calls": options.parallel_tool_calls}
    if options.response_format is not None:
        extras["response_format"] = response_format_dict(options.response_format)
    if options.logprobs:
        extras |= {"logprobs": True, "top_logprobs": options.top_logprobs}
    return extras


def tool_call_deltas(calls: Iterable[Any] | None) -> tuple[ToolCallDelta, ...]:
    """OpenAI-shaped tool-call deltas (objects with index, id, function.name/.arguments)."""
    out = []
    for call in calls or ():
        function = getattr(call, "function", None)
        out.append(ToolCallDelta(
            index=int(getattr(call, "index", 0) or 0), id=getattr(call, "id", None) or None,
            name=getattr(function, "name", None) or None, arguments=getattr(function, "arguments", None) or "",
        ))
    return tuple(out)


def clamp_logprob(value: float) -> float:
    """-inf (a token the grammar ruled out) as OpenAI's JSON can carry it."""
    return max(float(value), -9999.0)


def token_logprobs(entries: Sequence[Any] | None) -> tuple[TokenLogprob, ...]:
    """OpenAI-shaped logprobs content (objects with token, logprob, bytes, top_logprobs)."""
    return tuple(
        TokenLogprob(
            token=e.token, logprob=clamp_logprob(e.logprob), bytes=tuple(e.bytes) if e.bytes is not None else None,
            top=tuple(TokenLogprob(token=t.token, logprob=clamp_logprob(t.logprob),
                                   bytes=tuple(t.bytes) if t.bytes is not None else None)
                      for t in (e.top_logprobs or ())),
        )
        for e in entries or ()
    )
