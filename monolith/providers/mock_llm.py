"""Echoes the last user message token by token, paced like a real engine (the old echo server)."""

from __future__ import annotations

import asyncio
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence

from monolith.config import MockLLMConfig
from monolith.errors import InvalidRequest
from monolith.providers.llm import ChatMessage, LLMChunk, LLMProvider, SamplingOptions

# Latin words keep their leading space; any other character (kana, kanji, punctuation) is a token.
_TOKEN = re.compile(r"\s*[A-Za-z0-9'’]+|\s*[^\sA-Za-z0-9'’]|\s+")


def mock_tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


class MockLLM(LLMProvider):
    backend = "mock"
    is_mock = True

    def __init__(self, config: MockLLMConfig, *, model_id: str = "mock-llm", max_model_len: int = 8192) -> None:
        super().__init__(model_id=model_id)
        self.config = config
        self.max_model_len = max_model_len
        self.active: set[str] = set()
        # The last request ids by outcome (capped: the mock also serves production fallback).
        self.cancelled: deque[str] = deque(maxlen=256)
        self.completed: deque[str] = deque(maxlen=256)
        self.last_messages: list[ChatMessage] = []  # what the last request saw (the prompt, for tests)

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        self.last_messages = list(messages)
        user = next((m.content for m in reversed(messages) if m.role == "user"), "")
        tokens = mock_tokens(user)
        prompt_tokens = sum(len(mock_tokens(m.content)) for m in messages)
        if prompt_tokens + options.max_tokens > self.max_model_len:  # as the engine it stands in for
            raise InvalidRequest(
                f"the prompt is {prompt_tokens} tokens; with max_tokens {options.max_tokens} that is more than the "
                f"model's context of {self.max_model_len} tokens (llm.max_model_len)",
                code="context_length_exceeded", param="messages")
        self.active.add(request_id)
        finished = False
        try:
            await asyncio.sleep(self.config.first_token_ms / 1000)
            interval = 1.0 / self.config.tokens_per_second
            for i, token in enumerate(tokens[: options.max_tokens]):
                if i:
                    await asyncio.sleep(interval)
                yield LLMChunk(token)
            reason = "length" if len(tokens) > options.max_tokens else "stop"
            count = min(len(tokens), options.max_tokens)
            finished = True
            yield LLMChunk("", finish_reason=reason, prompt_tokens=prompt_tokens, completion_tokens=count)
        finally:
            self.active.discard(request_id)
            (self.completed if finished else self.cancelled).append(request_id)

    def running_requests(self) -> int:
        return len(self.active)
