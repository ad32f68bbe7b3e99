"""The mock LLM, paced like a real engine (the old echo server), deterministic so `--cpu-mock`
clients can test their code:

- It echoes the last user message token by token.
- Tools: with `tool_choice` "required" it calls the tool the last user message names (else the
  first tool); with a named function, that one; with "auto" only a tool whose name the last user
  message contains. The arguments are a JSON value valid for the tool's parameter schema
  (providers/json_example.py), the finish reason "tool_calls". After `tool` results (the last
  message is a tool's) it answers with the results' text, so an agent loop ends.
- `response_format`: a JSON value valid for the schema (`json_schema`), `{}` (`json_object`).
- logprobs: every token at logprob 0 (probability 1), itself its only alternative.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence

from monolith.config import MockLLMConfig
from monolith.errors import InvalidRequest
from monolith.providers.base import Capabilities
from monolith.providers.json_example import example
from monolith.providers.llm import (
    ChatMessage,
    FunctionTool,
    LLMChunk,
    LLMProvider,
    NamedFunction,
    SamplingOptions,
    TokenLogprob,
    ToolCallDelta,
)

# Latin words keep their leading space; any other character (kana, kanji, punctuation) is a token.
_TOKEN = re.compile(r"\s*[A-Za-z0-9'’]+|\s*[^\sA-Za-z0-9'’]|\s+")


def mock_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def chosen_tool(messages: Sequence[ChatMessage], options: SamplingOptions) -> FunctionTool | None:
    """The tool the mock calls for this request, if any (see the module's doc)."""
    if not options.calls_tools:
        return None
    choice = options.tool_choice
    if isinstance(choice, NamedFunction):
        return next((t for t in options.tools if t.name == choice.name), None)
    last = messages[-1] if messages else None
    asked = last.text if last is not None and last.role == "user" else ""
    named = next((t for t in options.tools if t.name in asked), None)
    return named or (options.tools[0] if choice == "required" else None)


def _answer(messages: Sequence[ChatMessage], options: SamplingOptions) -> str:
    if options.response_format is not None:
        fmt = options.response_format
        return json.dumps(example(fmt.schema) if fmt.type == "json_schema" else {}, ensure_ascii=False)
    if messages and messages[-1].role == "tool":  # the results of the tools it called
        results: list[str] = []
        for m in reversed(messages):
            if m.role != "tool":
                break
            results.insert(0, m.text)
        return " ".join(results)
    return next((m.text for m in reversed(messages) if m.role == "user"), "")


def _logprobs(token: str, options: SamplingOptions) -> tuple[TokenLogprob, ...]:
    if not options.logprobs:
        return ()
    raw = tuple(token.encode("utf-8"))
    top = (TokenLogprob(token, 0.0, raw),) if options.top_logprobs else ()
    return (TokenLogprob(token, 0.0, raw, top),)


class MockLLM(LLMProvider):
    backend = "mock"
    is_mock = True
    capabilities = Capabilities(tool_calls=True, structured_output=True, logprobs=True)

    def __init__(self, config: MockLLMConfig, *, model_id: str = "mock-llm", max_model_len: int = 8192) -> None:
        super().__init__(model_id=model_id)
        self.config = config
        self.max_model_len = max_model_len
        self.active: set[str] = set()
        # The last request ids by outcome (capped: the mock also serves production fallback).
        self.cancelled: deque[str] = deque(maxlen=256)
        self.completed: deque[str] = deque(maxlen=256)
        self.last_messages: list[ChatMessage] = []  # what the last request saw (the prompt, for tests)
        self.last_options: SamplingOptions | None = None

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        self.last_messages, self.last_options = list(messages), options
        tool = chosen_tool(messages, options)
        text = json.dumps(example(tool.parameters or {}), ensure_ascii=False) if tool else _answer(messages, options)
        tokens = mock_tokens(text)
        prompt_tokens = sum(len(mock_tokens(m.text)) + sum(len(mock_tokens(c.arguments)) for c in m.tool_calls)
                            for m in messages)
        if prompt_tokens + options.max_tokens > self.max_model_len:  # as the engine it stands in for
            raise InvalidRequest(
                f"the prompt is {prompt_tokens} tokens; with max_tokens {options.max_tokens} that is more than the "
                f"model's context of {self.max_model_len} tokens (llm.max_model_len)",
                code="context_length_exceeded", param="messages")
        self.active.add(request_id)
        finished = False
        try:
            await asyncio.sleep(self.config.first_token_ms / 1000)
            if tool is not None:
                call_id = "call_" + hashlib.sha256(request_id.encode()).hexdigest()[:24]
                yield LLMChunk("", tool_calls=(ToolCallDelta(0, id=call_id, name=tool.name),))
            interval = 1.0 / self.config.tokens_per_second
            for i, token in enumerate(tokens[: options.max_tokens]):
                if i or tool is not None:
                    await asyncio.sleep(interval)
                if tool is not None:
                    yield LLMChunk("", tool_calls=(ToolCallDelta(0, arguments=token),))
                else:
                    yield LLMChunk(token, logprobs=_logprobs(token, options))
            truncated = len(tokens) > options.max_tokens
            reason = "length" if truncated else "tool_calls" if tool is not None else "stop"
            count = min(len(tokens), options.max_tokens)
            finished = True
            yield LLMChunk("", finish_reason=reason, prompt_tokens=prompt_tokens, completion_tokens=count)
        finally:
            self.active.discard(request_id)
            (self.completed if finished else self.cancelled).append(request_id)

    def running_requests(self) -> int:
        return len(self.active)
