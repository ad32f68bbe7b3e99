"""/health, /ready and /metrics in every state; /v1/models; errors; request ids in logs."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import httpx
import pytest

from monolith.logs import JSONFormatter

from ..conftest import AppFactory, make_settings, real_llm_settings, running
from ..fakes import FakeRealLLM, llm_builder


async def test_health_lists_every_provider_in_the_old_shape(client: httpx.AsyncClient) -> None:
    body = (await client.get("/health")).json()
    assert set(body["providers"]) == {"llm", "stt", "tts", "embedding"}
    for p in body["providers"].values():
        assert {"provider", "endpoint", "placement", "is_mock", "fallback_count", "loaded"} <= set(p)
        assert p["endpoint"] == "in-process" and p["placement"] == "cpu"


async def test_ready_is_degraded_with_a_warning_when_mocks_serve(client: httpx.AsyncClient) -> None:
    resp = await client.get("/ready")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == "degraded"
    assert "llm: mock provider in use" in body["warnings"]
    assert body["providers"]["llm"]["is_mock"] is True


async def test_ready_is_503_while_loading_then_ready(app_factory: AppFactory) -> None:
    gate = asyncio.Event()
    settings = real_llm_settings()
    app = app_factory(settings, builders={"llm": llm_builder(FakeRealLLM(load_gate=gate))})
    async with running(app, wait_loaded=False) as client:
        resp = await client.get("/ready")
        assert resp.status_code == 503
        assert resp.json()["status"] == "not_ready"
        assert resp.json()["providers"]["llm"]["state"] == "loading"
        assert (await client.get("/health")).status_code == 200
        gate.set()
        await app.state.loader
        resp = await client.get("/ready")
        assert resp.status_code == 200
        # the LLM is real now; the three configured mocks still make it degraded
        assert resp.json()["providers"]["llm"]["is_mock"] is False
        assert resp.json()["status"] == "degraded"


async def test_ready_reports_a_real_provider_as_loaded(app_factory: AppFactory) -> None:
    app = app_factory(real_llm_settings(), builders={"llm": llm_builder(FakeRealLLM())})
    async with running(app) as client:
        body = (await client.get("/ready")).json()
        assert body["providers"]["llm"] == {
            "loaded": True, "state": "loaded", "provider": "fake-vllm", "is_mock": False, "serving": "engine",
            "fallback_count": 0, "model": "gpt-oss-120b",
        }
        assert "llm: mock provider in use" not in body["warnings"]


async def test_injected_load_failure_is_counted_everywhere(app_factory: AppFactory) -> None:
    from prometheus_client import REGISTRY

    before = REGISTRY.get_sample_value("monolith_provider_fallbacks_total", {"provider": "llm"}) or 0.0
    settings = real_llm_settings()
    app = app_factory(settings, builders={"llm": llm_builder(FakeRealLLM(fail_load=True))})
    async with running(app) as client:
        health = (await client.get("/health")).json()
        assert health["providers"]["llm"]["fallback_count"] == 1
        assert health["providers"]["llm"]["is_mock"] is True
        assert health["providers"]["llm"]["serving"] == "fallback_mock"
        assert any("llm: failed to load" in w for w in health["warnings"])
        metrics = (await client.get("/metrics")).text
        after = next(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                     if line.startswith('monolith_provider_fallbacks_total{provider="llm"}'))
        assert after == before + 1  # this app's load failure, counted once


async def test_an_engine_that_failed_to_load_makes_ready_503_while_its_mock_answers(app_factory: AppFactory) -> None:
    app = app_factory(real_llm_settings(), builders={"llm": llm_builder(FakeRealLLM(fail_load=True))})
    async with running(app) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "not_ready"
        assert body["failures"] == ["llm: vllm failed to load (RuntimeError: CUDA out of memory (injected))"]
        # the mock still answers requests (fallback = "mock"): availability is kept, not hidden
        chat = await client.post("/v1/chat/completions", json={"model": "default", "messages": [{"role": "user", "content": "hi"}]})
        assert chat.status_code == 200 and chat.json()["choices"][0]["message"]["content"] == "hi"


async def test_a_real_engine_pointed_at_a_missing_folder_is_not_ready(app_factory: AppFactory, tmp_path: Path) -> None:
    # The real sentence-transformers provider, loading from a folder that is not there.
    env = {f"MONOLITH_{n}__PROVIDER": '"mock"' for n in ("LLM", "STT", "TTS")}
    env |= {"MONOLITH_EMBEDDING__DEVICES": '"cpu"', "MONOLITH_EMBEDDING__MODEL": json.dumps(str(tmp_path / "no-such-model"))}
    settings = make_settings(env, cpu_mock=False)
    async with running(app_factory(settings)) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 503
        [failure] = ready.json()["failures"]
        assert failure.startswith("embedding: sentence-transformers failed to load (")
        assert "no-such-model" in failure
        assert ready.json()["providers"]["embedding"]["serving"] == "fallback_mock"


async def test_ready_when_degraded_restores_200_for_operators_who_prefer_availability(app_factory: AppFactory) -> None:
    settings = real_llm_settings({"MONOLITH_SERVER__READY_WHEN_DEGRADED": "true"})
    app = app_factory(settings, builders={"llm": llm_builder(FakeRealLLM(fail_load=True))})
    async with running(app) as client:
        ready = await client.get("/ready")
        assert ready.status_code == 200
        assert ready.json()["status"] == "degraded" and ready.json()["failures"]


async def test_a_planned_mock_is_degraded_not_failed(client: httpx.AsyncClient) -> None:
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    assert ready.json()["failures"] == []
    assert {p["serving"] for p in ready.json()["providers"].values()} == {"planned_mock"}


async def test_failed_required_provider_is_not_ready(app_factory: AppFactory) -> None:
    settings = real_llm_settings({"MONOLITH_LLM__FALLBACK": '"none"'})
    app = app_factory(settings, builders={"llm": llm_builder(FakeRealLLM(fail_load=True))})
    async with running(app) as client:
        resp = await client.get("/ready")
        assert resp.status_code == 503
        assert resp.json()["providers"]["llm"]["state"] == "failed"


def health_requests_counted(text: str) -> float:
    line = 'monolith_http_requests_total{method="GET",route="/health",status="200"} '
    return next((float(row[len(line):]) for row in text.splitlines() if row.startswith(line)), 0.0)


async def test_metrics_are_prometheus_text(client: httpx.AsyncClient) -> None:
    before = health_requests_counted((await client.get("/metrics")).text)
    await client.get("/health")
    await client.get("/health")
    resp = await client.get("/metrics")
    assert resp.headers["content-type"].startswith("text/plain")
    text = resp.text
    assert health_requests_counted(text) == before + 2  # every request counted, under its route
    assert 'monolith_provider_loaded{provider="llm"} 1.0' in text
    assert 'monolith_provider_is_mock{provider="tts"} 1.0' in text
    assert "monolith_turn_latency_seconds" in text


async def test_models_lists_every_served_model(client: httpx.AsyncClient) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    kinds = {m["kind"]: m["id"] for m in body["data"]}
    assert kinds == {
        "llm": "gpt-oss-120b", "stt": "streaming-zipformer",
        "tts": "openaudio-s1-mini", "embedding": "multilingual-e5-base",
    }


async def test_unknown_route_is_a_json_404(client: httpx.AsyncClient) -> None:
    resp = await client.get("/nope")
    assert resp.status_code == 404
    assert resp.json() == {"error": {"type": "not_found_error", "message": "Not Found", "code": None, "param": None}}


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    resp = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    generated = (await client.get("/health")).headers["x-request-id"]
    assert len(generated) == 32
    hostile = await client.get("/health", headers={"X-Request-ID": "x" * 500})
    assert hostile.headers["x-request-id"] != "x" * 500


async def test_request_id_reaches_log_lines(client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    await client.get("/ready", headers={"X-Request-ID": "trace-me"})
    lines = [json.loads(JSONFormatter().format(r)) for r in caplog.records if r.name == "monolith.access"]
    access = [line for line in lines if line["path"] == "/ready"]
    assert access and access[-1]["request_id"] == "trace-me"
    assert access[-1]["status"] == 200 and access[-1]["level"] == "info"


async def test_unhandled_errors_are_json_500_without_traceback(client: httpx.AsyncClient) -> None:
    from starlette.routing import Route

    async def boom(request: object) -> None:
        raise RuntimeError("secret internals")

    app = client._transport.app  # type: ignore[attr-defined]
    app.router.routes.append(Route("/boom", boom))
    resp = await client.get("/boom")
    assert resp.status_code == 500
    assert resp.json() == {"error": {"type": "internal_error", "message": "internal server error", "code": None, "param": None}}
    assert "secret" not in resp.text and resp.headers["x-request-id"]
