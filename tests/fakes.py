"""Test fakes that subclass the real provider bases, with knobs for failures and slowness."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import numpy as np

from monolith.config import MockLLMConfig, Settings
from monolith.providers.llm import ChatMessage, LLMChunk, LLMProvider, SamplingOptions
from monolith.providers.mock_llm import MockLLM
from monolith.providers.stt import STTEvent, STTProvider, STTStream
from monolith.providers.tts import TTSProvider
from monolith.turn_end import EndOfTurn


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


# --- fakes for driving a VoiceSession directly (tests/voice/test_session.py) ----------------------

Failure = str | None  # None, "before_first", "mid_stream", "hang", or "unicode"


class StepLLM(LLMProvider):
    """An LLM that says `reply` token by token, each token released by the test (`release`), or
    all at once with `free_running`; it can fail before its first token, mid-stream, or hang.
    A chunk in `reply` goes out as it is (tool-call pieces); the finish reason is "tool_calls"
    when there was one."""

    backend = "step-llm"

    def __init__(self, reply: Sequence[str | LLMChunk], *, fail: Failure = None, free_running: bool = True) -> None:
        super().__init__(model_id="step-llm")
        self.reply, self.fail, self.free_running = reply, fail, free_running
        self.gate: asyncio.Queue[None] = asyncio.Queue()
        self.active: set[str] = set()
        self.aborted: list[str] = []
        self.seen: list[list[ChatMessage]] = []
        self.options: list[SamplingOptions] = []

    def release(self, tokens: int = 1) -> None:
        for _ in range(tokens):
            self.gate.put_nowait(None)

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        self.seen.append(list(messages))
        self.options.append(options)
        self.active.add(request_id)
        finished = False
        try:
            if self.fail == "before_first":
                raise RuntimeError("engine exploded before its first token (injected)")
            if self.fail == "unicode":
                "\ud800".encode()  # what a lone surrogate in client text did to a real engine
            for i, token in enumerate(self.reply):
                if self.fail == "hang":
                    await asyncio.Event().wait()
                if not self.free_running:
                    await self.gate.get()
                if self.fail == "mid_stream" and i == 1:
                    raise RuntimeError("engine died mid-stream (injected)")
                yield token if isinstance(token, LLMChunk) else LLMChunk(token)
            finished = True
            calls = any(isinstance(t, LLMChunk) and t.tool_calls for t in self.reply)
            yield LLMChunk("", finish_reason="tool_calls" if calls else "stop", completion_tokens=len(self.reply))
        finally:
            self.active.discard(request_id)
            if not finished:
                self.aborted.append(request_id)

    def running_requests(self) -> int:
        return len(self.active)


class ToneTTS(TTSProvider):
    """Renders 10 ms of audio per character, in one piece, instantly; it can fail or hang."""

    backend = "tone-tts"
    native_sample_rate = 16000

    def __init__(self, *, fail: Failure = None) -> None:
        super().__init__(model_id="tone-tts")
        self.fail = fail
        self.rendered: list[str] = []
        self.active = 0

    def voices(self) -> list[str]:
        return ["default", "alto"]

    async def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True, speed: float = 1.0,
    ) -> AsyncIterator[np.ndarray]:
        self.active += 1
        try:
            if self.fail == "before_first":
                raise RuntimeError("vocoder exploded (injected)")
            if self.fail == "hang":
                await asyncio.Event().wait()
            self.rendered.append(text)
            yield np.full(160 * len(text), 0.1, dtype=np.float32)
        finally:
            self.active -= 1

    def running_requests(self) -> int:
        return self.active


class ScriptedSTTStream(STTStream):
    """Events come from the test (`say`); fed audio is only counted."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self.queue: asyncio.Queue[STTEvent | None] = asyncio.Queue()
        self.fed_samples = 0
        self.closed = False

    async def feed(self, samples: np.ndarray) -> None:
        self.fed_samples += samples.size

    def say(self, kind: str, text: str = "", audio_ms: float = 0.0) -> None:
        self.queue.put_nowait(STTEvent(kind, text, audio_ms))  # type: ignore[arg-type]

    async def events(self) -> AsyncIterator[STTEvent]:
        while (event := await self.queue.get()) is not None:
            yield event

    async def flush(self) -> None:
        pass

    async def close(self) -> None:
        self.closed = True
        self.queue.put_nowait(None)


class ScriptedSTT(STTProvider):
    backend = "scripted-stt"

    def __init__(self) -> None:
        super().__init__(model_id="scripted-stt")
        self.streams: list[ScriptedSTTStream] = []
        self.end_of_turn: EndOfTurn | None = None

    async def open_stream(
        self, *, sample_rate: int, request_id: str, end_of_turn: EndOfTurn | None = None
    ) -> STTStream:
        self.end_of_turn = end_of_turn
        self.streams.append(ScriptedSTTStream(sample_rate))
        return self.streams[-1]

    @property
    def stream(self) -> ScriptedSTTStream:
        return self.streams[-1]

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        return ""

    def live_streams(self) -> int:
        return sum(not s.closed for s in self.streams)
