"""Provider-shaped fronts over a slot: callers see one LLM/STT/TTS/embedder, the slot decides
which provider serves (the real one, or its mock after a failure when `fallback = "mock"`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

import numpy as np

from monolith import metrics
from monolith.errors import MonolithError, ProviderFailed, ProviderTimeout
from monolith.providers.base import Provider
from monolith.providers.embedding import EmbeddingProvider, TextKind
from monolith.providers.llm import ChatMessage, LLMChunk, LLMProvider, SamplingOptions
from monolith.providers.stt import Segment, STTProvider, STTStream
from monolith.providers.tts import TTSProvider
from monolith.registry.served import note_served
from monolith.registry.slot import Slot
from monolith.scheduler.tts_queue import DeviceQueue
from monolith.turn_end import EndOfTurn

T = TypeVar("T")


def _failure(slot: Slot, provider: Provider, exc: Exception) -> ProviderFailed:
    # The detail is for the log (api/errors.py logs it); the client learns which provider failed.
    return ProviderFailed(f"{slot.name} ({provider.backend}) failed: {type(exc).__name__}: {exc}",
                          code="provider_failed", public=f"the {slot.name} provider failed while serving this request")


async def _mock_for(slot: Slot, provider: Provider, exc: Exception) -> Provider:
    """The mock, for a request the serving provider failed before its first output; or the
    failure itself when no mock may stand in (or the engine died: its turns hear so)."""
    if provider.is_mock or not slot.can_fallback or provider.is_fatal(exc):
        raise _failure(slot, provider, exc) from exc
    slot.record_fallback(f"{provider.backend} raised during a request ({type(exc).__name__}: {exc})")
    return await slot.ensure_mock()


def _timed_out(slot: Slot, provider: Provider, seconds: float, first: bool) -> ProviderTimeout:
    what = "its first output" if first else "its next output"
    return ProviderTimeout(f"the {slot.name} provider ({provider.backend}) gave no {what.split(' ', 1)[1]} "
                           f"within {seconds:g} s ({slot.name}.{'first_output' if first else 'output_gap'}_timeout_s)",
                           code="provider_timeout")


async def stream_with_fallback(
    slot: Slot, wait_s: float, call: Callable[[Provider], AsyncIterator[T]]
) -> AsyncIterator[T]:
    """Stream from the serving provider; if it fails (or stays silent past its deadline) before
    its first item, from the mock.

    Once an item has gone out, a failure is the caller's error: switching voices or
    rewriting text halfway would be worse than saying it failed. Closing the stream (a timeout
    included) aborts the provider's work."""
    provider = await slot.current(wait_s)
    stream = call(provider)
    produced = False
    try:
        while True:
            deadline = slot.output_gap_timeout_s if produced else slot.first_output_timeout_s
            try:
                async with asyncio.timeout(deadline):
                    item = await anext(stream)
            except StopAsyncIteration:
                break
            except TimeoutError:
                metrics.PROVIDER_TIMEOUTS.labels(slot.name).inc()
                raise _timed_out(slot, provider, deadline, not produced) from None
            if not produced:
                note_served(slot.name, provider)
            produced = True
            yield item
        slot.record_success(provider)
        return
    except ProviderTimeout as exc:
        slot.record_failure(provider, exc)
        if produced or provider.is_mock or not slot.can_fallback:
            raise
        mock = await _mock_for(slot, provider, exc)
    except MonolithError:
        raise  # the request itself was bad: a mock would not make it good
    except Exception as exc:
        slot.record_failure(provider, exc)
        if produced:
            raise _failure(slot, provider, exc) from exc
        mock = await _mock_for(slot, provider, exc)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    note_served(slot.name, mock)
    async for item in call(mock):
        yield item


async def call_with_fallback(slot: Slot, wait_s: float, call: Callable[[Provider], Awaitable[T]]) -> T:
    provider = await slot.current(wait_s)
    try:
        async with asyncio.timeout(slot.first_output_timeout_s):
            result = await call(provider)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        metrics.PROVIDER_TIMEOUTS.labels(slot.name).inc()
        timeout = _timed_out(slot, provider, slot.first_output_timeout_s, True)
        slot.record_failure(provider, timeout)
        if provider.is_mock or not slot.can_fallback:
            raise timeout from None
        mock = await _mock_for(slot, provider, timeout)
    except MonolithError:
        raise
    except Exception as exc:
        slot.record_failure(provider, exc)
        mock = await _mock_for(slot, provider, exc)
    else:
        slot.record_success(provider)
        note_served(slot.name, provider)
        return result
    result = await call(mock)
    note_served(slot.name, mock)
    return result


class LLMFacade(LLMProvider):
    backend = "registry"

    def __init__(self, slot: Slot, wait_s: float) -> None:
        super().__init__(model_id=slot.served_id)
        self.slot, self.wait_s = slot, wait_s

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        def call(p: Provider) -> AsyncIterator[LLMChunk]:
            assert isinstance(p, LLMProvider)
            return p.stream_chat(messages, options, request_id=request_id)

        return stream_with_fallback(self.slot, self.wait_s, call)

    def running_requests(self) -> int:
        return sum(p.running_requests() for p in _providers(self.slot) if isinstance(p, LLMProvider))


class TTSFacade(TTSProvider):
    """Every chunk waits for its turn on the TTS device's queue (scheduler.tts_queue)."""

    backend = "registry"

    def __init__(self, slot: Slot, wait_s: float, device: DeviceQueue | None = None,
                 aliases: dict[str, str] | None = None) -> None:
        super().__init__(model_id=slot.served_id)
        self.slot, self.wait_s = slot, wait_s
        self.device = device or DeviceQueue()
        self.aliases = aliases or {}

    def voices(self) -> list[str]:
        """The serving engine's voices, and the names that stand for them (OpenAI's, by default)."""
        serving = self.slot.primary
        own = serving.voices() if isinstance(serving, TTSProvider) else ["default"]
        return [*own, *(alias for alias, target in self.aliases.items() if target in own and alias not in own)]

    def _voice(self, name: str) -> str:
        serving = self.slot.primary
        own = serving.voices() if isinstance(serving, TTSProvider) else ["default"]
        return name if name in own else self.aliases.get(name, name)

    def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True, speed: float = 1.0,
    ) -> AsyncIterator[np.ndarray]:
        raise NotImplementedError("use stream_pcm16: the native rate depends on who serves")

    async def stream_pcm16(
        self, text: str, *, voice: str, request_id: str, sample_rate: int, first_in_response: bool = True,
        speed: float = 1.0,
    ) -> AsyncIterator[bytes]:
        voice = self._voice(voice)

        def call(p: Provider) -> AsyncIterator[bytes]:
            assert isinstance(p, TTSProvider)
            return p.stream_pcm16(
                text, voice=voice, request_id=request_id, sample_rate=sample_rate,
                first_in_response=first_in_response, speed=speed,
            )

        # The chunk renders while it holds the device and its audio is buffered, so a slow
        # reader never keeps the device from the next session's chunk.
        buffered: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()

        async def render() -> None:
            try:
                async with self.device.turn(first_in_response=first_in_response, label=request_id):
                    async for pcm in stream_with_fallback(self.slot, self.wait_s, call):
                        buffered.put_nowait(pcm)
                buffered.put_nowait(None)
            except Exception as exc:
                buffered.put_nowait(exc)

        task = asyncio.create_task(render(), name=f"tts-render-{request_id}")
        try:
            while (item := await buffered.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            task.cancel()  # queued: it leaves the queue; rendering: the provider stops
            with contextlib.suppress(BaseException):
                await task

    def running_requests(self) -> int:
        return sum(p.running_requests() for p in _providers(self.slot) if isinstance(p, TTSProvider))


class STTFacade(STTProvider):
    backend = "registry"

    def __init__(self, slot: Slot, wait_s: float) -> None:
        super().__init__(model_id=slot.served_id)
        self.slot, self.wait_s = slot, wait_s

    async def open_stream(
        self, *, sample_rate: int, request_id: str, end_of_turn: EndOfTurn | None = None
    ) -> STTStream:
        async def call(p: Provider) -> STTStream:
            assert isinstance(p, STTProvider)
            return await p.open_stream(sample_rate=sample_rate, request_id=request_id, end_of_turn=end_of_turn)

        return await call_with_fallback(self.slot, self.wait_s, call)

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        async def call(p: Provider) -> str:
            assert isinstance(p, STTProvider)
            return await p.transcribe(samples, sample_rate)

        return await call_with_fallback(self.slot, self.wait_s, call)

    def transcribe_stream(self, samples: np.ndarray, sample_rate: int) -> AsyncIterator[str]:
        def call(p: Provider) -> AsyncIterator[str]:
            assert isinstance(p, STTProvider)
            return p.transcribe_stream(samples, sample_rate)

        return stream_with_fallback(self.slot, self.wait_s, call)

    def transcribe_segments(self, samples: np.ndarray, sample_rate: int) -> AsyncIterator[Segment]:
        def call(p: Provider) -> AsyncIterator[Segment]:
            assert isinstance(p, STTProvider)
            return p.transcribe_segments(samples, sample_rate)

        return stream_with_fallback(self.slot, self.wait_s, call)

    def live_streams(self) -> int:
        return sum(p.live_streams() for p in _providers(self.slot) if isinstance(p, STTProvider))


class EmbeddingFacade(EmbeddingProvider):
    backend = "registry"

    def __init__(self, slot: Slot, wait_s: float) -> None:
        super().__init__(model_id=slot.served_id)
        self.slot, self.wait_s = slot, wait_s

    def _serving(self) -> EmbeddingProvider | None:
        serving = self.slot.primary
        return serving if isinstance(serving, EmbeddingProvider) else None

    @property
    def dimension(self) -> int:  # type: ignore[override]
        serving = self._serving()
        return serving.dimension if serving is not None else 0

    @property
    def identity(self) -> str:
        serving = self._serving()
        return serving.identity if serving is not None else f"{self.model_id} (not loaded)"

    def count_tokens(self, texts: Sequence[str]) -> int:
        serving = self._serving()
        return serving.count_tokens(texts) if serving is not None else super().count_tokens(texts)

    def decode_tokens(self, token_ids: Sequence[int]) -> str:
        serving = self._serving()
        if serving is None:
            return super().decode_tokens(token_ids)
        return serving.decode_tokens(token_ids)

    async def embed(self, texts: Sequence[str], *, kind: TextKind) -> np.ndarray:
        vectors, _ = await self.embed_with_identity(texts, kind=kind)
        return vectors

    async def embed_with_identity(self, texts: Sequence[str], *, kind: TextKind) -> tuple[np.ndarray, str]:
        async def call(p: Provider) -> tuple[np.ndarray, str]:
            assert isinstance(p, EmbeddingProvider)
            return await p.embed(texts, kind=kind), p.identity

        return await call_with_fallback(self.slot, self.wait_s, call)


def _providers(slot: Slot) -> list[Provider]:
    """The serving provider and the fallback mock, each once."""
    found = {id(p): p for p in (slot.primary, slot.mock) if p is not None}
    return list(found.values())
