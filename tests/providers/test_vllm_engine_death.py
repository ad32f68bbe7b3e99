"""vLLM's engine core is a separate process: killed, monolith notices (EngineDeadError), /ready
answers 503, a turn in progress hears so, and the engine comes back by itself."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psutil
import pytest

from ..conftest import AppFactory, real_llm_settings, running

pytestmark = pytest.mark.slow  # two engine starts on CPU


async def test_killing_the_engine_core_is_noticed_reported_and_recovered(
    app_factory: AppFactory, llm_models: dict[str, Path],
) -> None:
    env = {"MONOLITH_LLM__MODEL": json.dumps(str(llm_models["llama"])), "MONOLITH_LLM__MAX_MODEL_LEN": "512",
           "MONOLITH_LLM__MAX_TOKENS": "16", "MONOLITH_SERVER__HEALTH_CHECK_INTERVAL_S": "0.2",
           "MONOLITH_LLM__ENGINE_ARGS": '{enforce_eager = true, kv_cache_memory_bytes = 1073741824}'}
    app = app_factory(real_llm_settings(env))
    # Other tests' engines (a session-wide vLLM, PostgreSQL) are children of this process too:
    # only this server's engine core is killed.
    others = {p.pid for p in psutil.Process().children(recursive=True)}
    async with running(app, load_timeout=180) as client:
        ready = await client.get("/ready")
        assert ready.json()["providers"]["llm"]["serving"] == "engine", ready.text
        before = {p.pid for p in psutil.Process().children(recursive=True)} - others
        assert before, "vLLM runs its engine core in a child process"
        for pid in before:
            psutil.Process(pid).kill()
        slot = app.state.registry.slots["llm"]
        for _ in range(100):
            if slot.failure:
                break
            await asyncio.sleep(0.1)
        ready = await client.get("/ready")
        assert ready.status_code == 503 and "EngineDeadError" in ready.json()["failures"][0]
        for _ in range(1800):
            if slot.state == "loaded" and slot.failure is None:
                break
            await asyncio.sleep(0.1)
        ready = await client.get("/ready")
        assert ready.json()["providers"]["llm"]["serving"] == "engine" and not ready.json()["failures"]
        after = {p.pid for p in psutil.Process().children(recursive=True)} - others
        assert after and not after & before, "a new engine core runs"
        chat = await client.post("/v1/chat/completions", json={
            "model": "default", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 4})
        assert chat.status_code == 200 and chat.json()["usage"]["completion_tokens"] >= 1
