"""Test fakes that subclass the real provider bases, with knobs for failures and slowness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from monolith.config import MockLLMConfig, Settings
from monolith.providers.llm import ChatMessage, LLMChunk, LLMProvider, SamplingOptions
from monolith.providers.mock_llm import MockLLM


class FakeRealLLM(MockLLM):
    """Looks like a real backend (not a mock) so the registry's fallback rules apply."""

    backend = "fake-vllm"
    is_mock = False

    def __init__(
        self,
        *,
        fail_load: bool = False,
        fail_request: bool = False,
        fail_after_first: bool = False,
        load_gate: asyncio.Event | None = None,
    ) -> None:
        super().__init__(MockLLMConfig(first_token_ms=1, tokens_per_second=1000), model_id="fake")
        self.fail_load = fail_load
        self.fail_request = fail_request
        self.fail_after_first = fail_after_first
        self.load_gate = load_gate
        self.closed = False

    async def load(self) -> None:
        if self.load_gate is not None:
            await self.load_gate.wait()
        if self.fail_load:
            raise RuntimeError("CUDA out of memory (injected)")

    async def close(self) -> None:
        self.closed = True

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        if self.fail_request:
            raise RuntimeError("engine died (injected)")
        async for chunk in super().stream_chat(messages, options, request_id=request_id):
            yield chunk
            if self.fail_after_first:
                raise RuntimeError("engine died mid-stream (injected)")


def llm_builder(fake: FakeRealLLM):  # type: ignore[no-untyped-def]
    def build(settings: Settings, name: str) -> FakeRealLLM:
        return fake

    return build


class SharedLLM(LLMProvider):
    """An already-loaded provider lent to one app after another (one vLLM engine start per test
    run instead of one per app): load and close are the lender's business."""

    def __init__(self, inner: LLMProvider) -> None:
        super().__init__(model_id=inner.model_id, model_path=inner.model_path)
        self.inner = inner
        self.backend = inner.backend  # type: ignore[misc]

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        return self.inner.stream_chat(messages, options, request_id=request_id)

    def running_requests(self) -> int:
        return self.inner.running_requests()
