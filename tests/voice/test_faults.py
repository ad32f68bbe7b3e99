"""Fault injection through the real server: each provider fails at load, before its first
output, mid-stream, or hangs; a client hangs up at each stage of a turn. Whatever happens the
client hears it (an event, never silence), and afterwards nothing is left behind: no asyncio
task, no engine request, no STT stream, no session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import numpy as np
import pytest
import websockets

from monolith.config import Settings
from monolith.providers.llm import ChatMessage, LLMChunk, SamplingOptions
from monolith.providers.mock_stt import MockSTT
from monolith.providers.mock_tts import MockTTS
from monolith.providers.stt import STTEvent, STTStream
from monolith.turn_end import EndOfTurn

from ..conftest import AppFactory, make_settings
from ..fakes import FakeRealLLM
from .conftest import LiveServer, serve_live, silence, speech

FAULTS = ["load", "before_first", "mid_stream", "hang"]


class FaultyLLM(FakeRealLLM):
    def __init__(self, fault: str | None) -> None:
        super().__init__(fail_load=fault == "load", fail_request=fault == "before_first",
                         fail_after_first=fault == "mid_stream")
        self.hang = fault == "hang"

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        self.active.add(request_id)
        try:
            if self.hang:
                await asyncio.Event().wait()
            async for chunk in super().stream_chat(messages, options, request_id=request_id):
                yield chunk
        finally:
            self.active.discard(request_id)


class FaultyTTS(MockTTS):
    backend = "fake-tts"
    is_mock = False

    def __init__(self, settings: Settings, fault: str | None) -> None:
        super().__init__(settings.tts.mock, model_id="fake-tts")
        self.fault = fault

    async def load(self) -> None:
        if self.fault == "load":
            raise RuntimeError("vocoder weights are corrupt (injected)")

    async def synthesize(self, text: str, *, voice: str, request_id: str,
                         first_in_response: bool = True, speed: float = 1.0) -> AsyncIterator[np.ndarray]:
        if self.fault == "before_first":
            raise RuntimeError("vocoder exploded (injected)")
        count = 0
        async for piece in super().synthesize(text, voice=voice, request_id=request_id,
                                              first_in_response=first_in_response):
            if self.fault == "hang":
                self.active.add(request_id)
                try:
                    await asyncio.Event().wait()
                finally:
                    self.active.discard(request_id)
            if self.fault == "mid_stream" and count == 1:
                raise RuntimeError("vocoder died mid-chunk (injected)")
            count += 1
            yield piece


class FaultySTTStream(STTStream):
    def __init__(self, inner: STTStream, fault: str | None) -> None:
        self.inner, self.fault = inner, fault

    async def feed(self, samples: np.ndarray) -> None:
        await self.inner.feed(samples)

    async def events(self) -> AsyncIterator[STTEvent]:
        async for event in self.inner.events():
            yield event
            if self.fault == "mid_stream":
                raise RuntimeError("decoder died mid-stream (injected)")

    async def flush(self) -> None:
        await self.inner.flush()

    async def close(self) -> None:
        await self.inner.close()


class FaultySTT(MockSTT):
    backend = "fake-stt"
    is_mock = False

    def __init__(self, settings: Settings, fault: str | None) -> None:
        super().__init__(settings.stt, model_id="fake-stt")
        self.fault = fault

    async def load(self) -> None:
        if self.fault == "load":
            raise RuntimeError("recognizer failed to load (injected)")

    async def open_stream(
        self, *, sample_rate: int, request_id: str, end_of_turn: EndOfTurn | None = None
    ) -> STTStream:
        if self.fault == "before_first":
            raise RuntimeError("recognizer refused a stream (injected)")
        if self.fault == "hang":
            await asyncio.Event().wait()
        inner = await super().open_stream(sample_rate=sample_rate, request_id=request_id, end_of_turn=end_of_turn)
        return FaultySTTStream(inner, self.fault)


def real_settings(fallback: str) -> Settings:
    env = {f"MONOLITH_{n}__DEVICES": '"cpu"' for n in ("LLM", "STT", "TTS")}
    env |= {f"MONOLITH_{n}__FALLBACK": json.dumps(fallback) for n in ("LLM", "STT", "TTS")}
    env |= {f"MONOLITH_{n}__FIRST_OUTPUT_TIMEOUT_S": "0.5" for n in ("LLM", "STT", "TTS")}
    env |= {"MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "1", "MONOLITH_EMBEDDING__PROVIDER": '"mock"'}
    return make_settings(env, cpu_mock=False)


def builders(provider: str, fault: str | None) -> dict[str, Any]:
    return {
        "llm": lambda s, n: FaultyLLM(fault if provider == "llm" else None),
        "tts": lambda s, n: FaultyTTS(s, fault if provider == "tts" else None),
        "stt": lambda s, n: FaultySTT(s, fault if provider == "stt" else None),
    }


def leftovers(live: LiveServer) -> dict[str, int]:
    registry = live.registry
    return {"llm_requests": registry.llm.in_flight(), "tts_requests": registry.tts.in_flight(),
            "stt_streams": registry.stt.in_flight(), "sessions": len(live.app.state.voice.sessions)}


async def settle(live: LiveServer, baseline: set[asyncio.Task[Any]]) -> None:
    """Wait (bounded) until the server holds nothing more than before the client came."""
    for _ in range(100):
        tasks = {t for t in asyncio.all_tasks() if not t.done()} - baseline - {asyncio.current_task()}
        if not any(leftovers(live).values()) and not tasks:
            return
        await asyncio.sleep(0.05)
    tasks = {t.get_name() for t in asyncio.all_tasks() if not t.done()} - {t.get_name() for t in baseline}
    raise AssertionError(f"left behind: {leftovers(live)}, tasks {sorted(tasks)}")


async def turn(ws: Any, provider: str) -> list[dict[str, Any]]:
    """One turn (spoken when STT is under test, typed otherwise): the events until it ends."""
    if provider == "stt":
        pcm = speech(0.8) + silence(0.8)
        for i in range(0, len(pcm), 3200):
            await ws.send(pcm[i : i + 3200])
    else:
        await ws.send(json.dumps({"type": "input_text", "text": "Hello there. How are you today?"}))
    events: list[dict[str, Any]] = []
    while True:
        try:
            message = await asyncio.wait_for(ws.recv(), 5)
        except TimeoutError:
            return events
        if isinstance(message, bytes):
            continue
        events.append(json.loads(message))
        if events[-1]["type"] in ("turn.metrics", "error"):
            return events


@pytest.mark.parametrize("provider", ["llm", "tts", "stt"])
@pytest.mark.parametrize("fault", FAULTS)
async def test_a_failing_provider_is_heard_and_leaves_nothing(app_factory: AppFactory, provider: str, fault: str) -> None:
    app = app_factory(real_settings("none"), builders=builders(provider, fault))
    async with serve_live(app) as live:
        baseline = {t for t in asyncio.all_tasks() if not t.done()}
        if fault == "load":  # nothing serves it: /ready says so, and a session says why
            assert live.registry.slots[provider].state == "failed"
        try:
            ws = await websockets.connect(live.url)
        except websockets.InvalidStatus:  # pragma: no cover - the session may not even start
            raise
        first = json.loads(await ws.recv())
        if provider == "stt" and fault in ("load", "before_first", "hang"):
            assert first["type"] == "error"  # the session cannot hear: it says so and closes
        else:
            assert first["type"] == "session.created"
            events = await turn(ws, provider)
            kinds = [e["type"] for e in events]
            assert "error" in kinds, kinds
            error = events[kinds.index("error")]["error"]
            assert error["code"] in ("provider_failed", "provider_timeout", "provider_error", "stt_failed"), error
            assert " at 0x" not in error["message"] and "(injected)" not in error["message"]  # no internals
        await ws.close()
        await settle(live, baseline)


@pytest.mark.parametrize("fault", FAULTS)
async def test_with_fallback_the_mock_finishes_the_turn(app_factory: AppFactory, fault: str) -> None:
    app = app_factory(real_settings("mock"), builders=builders("llm", fault))
    async with serve_live(app) as live:
        baseline = {t for t in asyncio.all_tasks() if not t.done()}
        ws = await websockets.connect(live.url)
        await ws.recv()
        events = await turn(ws, "llm")
        kinds = [e["type"] for e in events]
        if fault == "mid_stream":  # text already went out: the failure is reported, not papered over
            assert "error" in kinds
        else:
            assert "response.done" in kinds and "error" not in kinds
        await ws.close()
        await settle(live, baseline)


STAGES = ["speech.started", "transcript.final", "response.started", "response.audio.started", "response.done"]


@pytest.mark.parametrize("stage", STAGES)
async def test_a_client_hanging_up_at_any_stage_leaves_nothing(app_factory: AppFactory, stage: str) -> None:
    env = {"MONOLITH_LLM__MOCK__TOKENS_PER_SECOND": "30"}
    async with serve_live(app_factory(make_settings(env))) as live:
        baseline = {t for t in asyncio.all_tasks() if not t.done()}
        ws = await websockets.connect(live.url)
        await ws.recv()
        pcm = speech(0.8) + silence(0.8)

        async def talk() -> None:
            for i in range(0, len(pcm), 640):
                await ws.send(pcm[i : i + 640])
                await asyncio.sleep(0.02)

        talking = asyncio.create_task(talk())
        while True:
            message = await asyncio.wait_for(ws.recv(), 10)
            if isinstance(message, str) and json.loads(message)["type"] == stage:
                break
        talking.cancel()
        await ws.close()  # gone, mid-turn
        await settle(live, baseline)
