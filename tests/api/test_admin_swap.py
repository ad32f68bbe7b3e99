"""POST /admin/models/{provider}: swap without restart, automatic rollback, /health records it."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from monolith.providers.base import Provider
from monolith.registry import Registry

from ..conftest import AppFactory, build_app, load_tiny, make_settings, real_llm_settings, running
from ..fakes import FakeRealLLM

TOKEN = {"MONOLITH_SERVER__ADMIN_TOKEN": '"s3cret"'}
AUTH = {"Authorization": "Bearer s3cret"}


async def swap(client: httpx.AsyncClient, provider: str, path: Path | str, **extra: Any) -> httpx.Response:
    return await client.post(f"/admin/models/{provider}", json={"path": str(path), **extra}, headers=AUTH)


@pytest.mark.parametrize("provider", ["llm", "stt", "tts", "embedding"])
async def test_each_mock_provider_swaps_and_health_shows_the_new_model(
    app_factory: AppFactory, tmp_path: Path, provider: str
) -> None:
    new = tmp_path / f"{provider}-v2"
    new.mkdir()
    async with running(app_factory(make_settings(TOKEN))) as client:
        client.headers.update(AUTH)  # the admin token also reads /health in full
        before = (await client.get("/health")).json()["providers"][provider]
        resp = await swap(client, provider, new)
        assert resp.status_code == 200, resp.text
        assert resp.json()["swap"]["ok"] is True and resp.json()["model_path"] == str(new)
        after = (await client.get("/health")).json()["providers"][provider]
        assert after["model_path"] == str(new) and after["state"] == "loaded"
        assert after["loaded_at"] >= before["loaded_at"]
        assert after["swaps"][-1]["to"] == str(new) and after["swaps"][-1]["ok"] is True
        assert (await client.get("/ready")).json()["status"] == "degraded"  # mocks; not a failure
        # the swapped provider still answers
        if provider == "embedding":
            assert (await client.post("/v1/embeddings", json={"input": "hello"})).status_code == 200


async def test_swap_is_disabled_without_a_token_and_needs_the_right_one(app_factory: AppFactory, tmp_path: Path) -> None:
    async with running(app_factory(make_settings())) as client:
        client.headers.update(AUTH)  # the admin token also reads /health in full
        resp = await swap(client, "llm", tmp_path)
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "admin_disabled"
    async with running(app_factory(make_settings(TOKEN))) as client:
        client.headers.update(AUTH)  # the admin token also reads /health in full
        resp = await client.post("/admin/models/llm", json={"path": str(tmp_path)}, headers={"Authorization": "Bearer no"})
        assert resp.status_code == 401
        assert (await swap(client, "vocoder", tmp_path)).status_code == 404
        assert (await client.post("/admin/models/llm", json={"model": "x"}, headers=AUTH)).status_code == 400


async def test_a_broken_path_leaves_the_old_model_serving(app_factory: AppFactory, tmp_path: Path) -> None:
    async with running(app_factory(make_settings(TOKEN))) as client:
        client.headers.update(AUTH)  # the admin token also reads /health in full
        old = (await client.get("/health")).json()["providers"]["llm"]["model_path"]
        resp = await swap(client, "llm", tmp_path / "nope")
        assert resp.status_code == 422
        assert "does not exist" in resp.json()["error"]["message"]
        health = (await client.get("/health")).json()
        assert health["providers"]["llm"]["model_path"] == old
        assert health["providers"]["llm"]["swaps"][-1]["ok"] is False
        assert any("swap to" in w for w in health["warnings"])


class GatedLLM(FakeRealLLM):
    def __init__(self, gate: asyncio.Event, *, fail: bool = False, path: str = "") -> None:
        super().__init__()
        self.gate, self.fail = gate, fail
        self.model_path = path

    async def load(self) -> None:
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("CUDA out of memory (injected)")


def chat(client: httpx.AsyncClient) -> Any:
    return client.post("/v1/chat/completions", json={"model": "default", "messages": [{"role": "user", "content": "Hi there."}]})


async def test_during_a_swap_ready_is_degraded_and_the_old_model_serves(app_factory: AppFactory, tmp_path: Path) -> None:
    gate = asyncio.Event()
    app = app_factory(real_llm_settings(TOKEN), builders={"llm": lambda s, n: FakeRealLLM()})
    async with running(app) as client:
        client.headers.update(AUTH)  # the admin token also reads /health in full
        registry: Registry = app.state.registry
        new = GatedLLM(gate, path=str(tmp_path))
        registry._build_at = lambda name, path: new  # type: ignore[method-assign]
        (tmp_path / "config.json").write_text("{}")
        (tmp_path / "w.safetensors").write_text("")
        (tmp_path / "tokenizer.json").write_text("{}")
        swapping = asyncio.create_task(swap(client, "llm", tmp_path))
        while registry.slots["llm"].state != "swapping":
            await asyncio.sleep(0.005)
        assert (await client.get("/ready")).json()["status"] == "degraded"
        during = await chat(client)
        assert during.status_code == 200  # the old model answers while the new one loads
        gate.set()
        assert (await swapping).status_code == 200
        assert registry.slots["llm"].primary is new


async def test_unload_first_failure_reloads_the_old_model(app_factory: AppFactory, tmp_path: Path) -> None:
    gate = asyncio.Event()
    built: list[Provider] = []
    app = app_factory(real_llm_settings(TOKEN), builders={"llm": lambda s, n: FakeRealLLM()})
    async with running(app) as client:
        client.headers.update(AUTH)  # the admin token also reads /health in full
        registry: Registry = app.state.registry
        old = registry.slots["llm"].primary
        assert isinstance(old, FakeRealLLM)

        def build_at(name: str, path: str) -> Provider:
            provider: Provider = GatedLLM(gate, fail=path == str(tmp_path), path=path)
            built.append(provider)
            return provider

        registry._build_at = build_at  # type: ignore[method-assign]
        for name in ("config.json", "w.safetensors", "tokenizer.json"):
            (tmp_path / name).write_text("{}")
        swapping = asyncio.create_task(swap(client, "llm", tmp_path, unload_first=True))
        while registry.slots["llm"].state != "swapping":
            await asyncio.sleep(0.005)
        assert old.closed  # released first, as a 120B model on the same GPUs must be
        during = await chat(client)  # the old model is gone: the fallback mock answers meanwhile
        assert during.status_code == 200 and registry.slots["llm"].mock is not None
        gate.set()
        resp = await swapping
        assert resp.status_code == 422 and "CUDA out of memory" in resp.json()["error"]["message"]
        assert resp.json()["swap"]["restored"] is True
        slot = registry.slots["llm"]
        # the old model (which had no path of its own: the configured one) is loaded again
        assert slot.state == "loaded" and isinstance(slot.primary, FakeRealLLM) and slot.primary is not old
        assert not slot.primary.is_mock and built[-1].model_path == str(tmp_path)
        assert (await chat(client)).status_code == 200


async def test_sessions_in_progress_keep_their_stream_through_an_stt_swap(app_factory: AppFactory, tmp_path: Path) -> None:
    import numpy as np

    app = app_factory(make_settings(TOKEN))
    async with running(app) as client:
        client.headers.update(AUTH)  # the admin token also reads /health in full
        registry: Registry = app.state.registry
        old = registry.slots["stt"].primary
        stream = await registry.stt.open_stream(sample_rate=16000, request_id="live")
        assert (await swap(client, "stt", tmp_path)).status_code == 200
        assert registry.slots["stt"].primary is not old
        assert old in registry.slots["stt"]._retired  # kept for the open session
        t = np.arange(16000) / 16000
        await stream.feed((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32))
        first = await asyncio.wait_for(anext(stream.events()), 5)
        assert first.kind == "speech_started"  # the old stream still works
        await stream.close()
        for _ in range(50):
            if old not in registry.slots["stt"]._retired:
                break
            await asyncio.sleep(0.05)
        assert old not in registry.slots["stt"]._retired  # released once its session ended


async def test_real_embedding_and_stt_swap_and_refuse_broken_folders(tiny_root: Path, sherpa_models: dict[str, Path], tmp_path: Path) -> None:

    settings = load_tiny(tiny_root, {**TOKEN, "MONOLITH_RAG__ENABLED": "false"})
    app = build_app(settings)
    async with running(app) as client:
        client.headers.update(AUTH)  # the admin token also reads /health in full
        copy = tmp_path / "minilm-copy"
        shutil.copytree(tiny_root / "embedding" / "all-minilm-l6-v2", copy)
        before = (await client.post("/v1/embeddings", json={"input": "battery life"})).json()["data"][0]["embedding"]
        assert (await swap(client, "embedding", copy)).status_code == 200
        after = (await client.post("/v1/embeddings", json={"input": "battery life"})).json()["data"][0]["embedding"]
        assert after == pytest.approx(before, abs=1e-5)  # the same weights, now from the new folder
        broken = tmp_path / "broken-embedding"
        broken.mkdir()
        (broken / "config.json").write_text("{}")
        (broken / "model.safetensors").write_text("not a safetensors file")
        resp = await swap(client, "embedding", broken)
        assert resp.status_code == 422 and resp.json()["model_path"] == str(copy)
        assert (await client.post("/v1/embeddings", json={"input": "x"})).status_code == 200

        assert (await swap(client, "stt", sherpa_models["offline"])).status_code == 200
        health = (await client.get("/health")).json()["providers"]["stt"]
        assert health["model_path"] == str(sherpa_models["offline"]) and health["provider"] == "sherpa-onnx"
        broken_stt = tmp_path / "broken-stt"
        broken_stt.mkdir()
        (broken_stt / "tokens.txt").write_text("<blk> 0\n")
        (broken_stt / "model.onnx").write_text("garbage")
        resp = await swap(client, "stt", broken_stt)
        assert resp.status_code == 422
        assert (await client.get("/health")).json()["providers"]["stt"]["model_path"] == str(sherpa_models["offline"])
