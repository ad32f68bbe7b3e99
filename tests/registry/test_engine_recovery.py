"""An engine that dies, keeps failing or hangs: noticed, reported in /ready, restarted with
backoff, and its requests never hang with it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

from monolith.providers.llm import ChatMessage, LLMChunk, SamplingOptions

from ..conftest import AppFactory, real_llm_settings, running
from ..fakes import FakeRealLLM

FAST_WATCH = {"MONOLITH_SERVER__HEALTH_CHECK_INTERVAL_S": "0.05"}


class MortalLLM(FakeRealLLM):
    """A fake engine that can die (its health check says so) or hang."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.dead = False
        self.hang = False
        self.hang_after_first = False

    def health_problem(self) -> str | None:
        return "died: engine core process is gone (injected)" if self.dead else None

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        if self.hang:
            await self._hang(request_id)
        async for chunk in super().stream_chat(messages, options, request_id=request_id):
            yield chunk
            if self.hang_after_first:
                await self._hang(request_id)

    async def _hang(self, request_id: str) -> None:
        self.active.add(request_id)
        try:
            await asyncio.Event().wait()
        finally:
            self.active.discard(request_id)


async def wait_for(predicate: object, seconds: float = 5.0) -> None:
    for _ in range(int(seconds / 0.02)):
        if predicate():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("condition not reached")


async def test_a_dead_engine_makes_ready_503_and_is_restarted(app_factory: AppFactory) -> None:
    engines: list[MortalLLM] = []

    def build(settings: object, name: str) -> MortalLLM:
        engines.append(MortalLLM(load_gate=gate if len(engines) == 1 else None))
        return engines[-1]

    gate = asyncio.Event()
    gate.set()
    app = app_factory(real_llm_settings(FAST_WATCH), builders={"llm": build})
    async with running(app) as client:
        assert (await client.get("/ready")).json()["providers"]["llm"]["serving"] == "engine"
        gate.clear()  # the restarted engine takes a while to load: /ready must say so meanwhile
        engines[0].dead = True
        await wait_for(lambda: len(engines) == 2)
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert "died: engine core process is gone (injected); restarting" in ready.json()["failures"][0]
        assert engines[0].closed
        chat = await client.post("/v1/chat/completions", json={"model": "default",
                                                               "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200  # the mock answers meanwhile (fallback = "mock")
        gate.set()
        slot = app.state.registry.slots["llm"]
        await wait_for(lambda: slot.primary is engines[1])
        ready = await client.get("/ready")
        assert ready.json()["providers"]["llm"]["serving"] == "engine" and ready.json()["failures"] == []
        health = (await client.get("/health")).json()["providers"]["llm"]
        assert health["restarts"] == 1


async def test_an_engine_whose_calls_keep_failing_is_restarted(app_factory: AppFactory) -> None:
    engines: list[MortalLLM] = []

    def build(settings: object, name: str) -> MortalLLM:
        engines.append(MortalLLM(fail_request=not engines))
        return engines[-1]

    env = {**FAST_WATCH, "MONOLITH_SERVER__RESTART_AFTER_FAILURES": "3"}
    app = app_factory(real_llm_settings(env), builders={"llm": build})
    async with running(app) as client:
        for _ in range(3):
            resp = await client.post("/v1/chat/completions", json={
                "model": "default", "messages": [{"role": "user", "content": "hi"}]})
            assert resp.status_code == 200  # each request fell back to the mock
        slot = app.state.registry.slots["llm"]
        await wait_for(lambda: len(engines) == 2 and slot.primary is engines[1])
        assert slot.restarts == 1 and slot.fallback_count >= 3


async def test_a_hanging_engine_times_out_and_the_mock_answers(app_factory: AppFactory) -> None:
    fake = MortalLLM()
    fake.hang = True
    env = {"MONOLITH_LLM__FIRST_OUTPUT_TIMEOUT_S": "0.3"}
    app = app_factory(real_llm_settings(env), builders={"llm": lambda s, n: fake})
    async with running(app) as client:
        resp = await client.post("/v1/chat/completions", json={
            "model": "default", "messages": [{"role": "user", "content": "hi"}]})
        assert resp.status_code == 200 and resp.json()["choices"][0]["message"]["content"] == "hi"
        assert fake.running_requests() == 0, "the hung request was aborted"
        assert app.state.registry.slots["llm"].fallback_count == 1


async def test_a_hanging_engine_without_fallback_is_a_504(app_factory: AppFactory) -> None:
    fake = MortalLLM()
    fake.hang = True
    env = {"MONOLITH_LLM__FIRST_OUTPUT_TIMEOUT_S": "0.3", "MONOLITH_LLM__FALLBACK": '"none"'}
    app = app_factory(real_llm_settings(env), builders={"llm": lambda s, n: fake})
    async with running(app) as client:
        resp = await client.post("/v1/chat/completions", json={
            "model": "default", "messages": [{"role": "user", "content": "hi"}]})
        assert resp.status_code == 504 and resp.json()["error"]["code"] == "provider_timeout"
        assert "within 0.3 s (llm.first_output_timeout_s)" in resp.json()["error"]["message"]
        assert fake.running_requests() == 0


async def test_an_engine_that_stops_mid_stream_ends_the_stream_with_an_error(app_factory: AppFactory) -> None:
    """After output has gone out a mock must not take over; the gap deadline ends the stream
    with an error that names it, and the engine's request is aborted."""
    fake = MortalLLM()
    fake.hang_after_first = True
    env = {"MONOLITH_LLM__OUTPUT_GAP_TIMEOUT_S": "0.3"}
    app = app_factory(real_llm_settings(env), builders={"llm": lambda s, n: fake})
    async with running(app) as client:
        async with client.stream("POST", "/v1/chat/completions", json={
                "model": "default", "stream": True, "messages": [{"role": "user", "content": "hello there"}]}) as resp:
            assert resp.status_code == 200
            body = "".join([text async for text in resp.aiter_text()])
        events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
        said = "".join(e["choices"][0]["delta"].get("content", "") for e in events if "choices" in e)
        assert said == "hello"  # the first word went out, then the engine stalled
        error = events[-1]["error"]
        assert error["code"] == "provider_timeout"
        assert "gave no next output within 0.3 s (llm.output_gap_timeout_s)" in error["message"]
        assert fake.running_requests() == 0, "the stalled request was aborted"
        assert app.state.registry.slots["llm"].fallback_count == 0  # no mock spoke halfway
