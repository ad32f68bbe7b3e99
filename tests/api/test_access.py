"""API keys, browser origins and what probes may read, as clients meet them."""

from __future__ import annotations

import json
from pathlib import Path

import openai
import pytest
import websockets

from ..conftest import AppFactory, make_settings, openai_client, running
from ..voice.conftest import serve_live

KEYS = {"MONOLITH_SERVER__API_KEYS": '["key-one", "key-two"]', "MONOLITH_SERVER__ADMIN_TOKEN": '"admin-s3cret"'}


async def test_the_openai_sdk_without_a_key_gets_an_authentication_error(app_factory: AppFactory) -> None:
    async with running(app_factory(make_settings(KEYS))) as client:
        anonymous = openai_client(client)
        with pytest.raises(openai.AuthenticationError) as err:
            await anonymous.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
        assert err.value.body["code"] == "invalid_api_key"  # type: ignore[index]
        wrong = openai.AsyncOpenAI(api_key="nope", base_url="http://monolith/v1", http_client=client, max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            await wrong.models.list()
        keyed = openai.AsyncOpenAI(api_key="key-two", base_url="http://monolith/v1", http_client=client, max_retries=0)
        reply = await keyed.chat.completions.create(model="default", messages=[{"role": "user", "content": "hi"}])
        assert reply.choices[0].message.content == "hi"


async def test_keys_come_from_a_file_too(app_factory: AppFactory, tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# one per line\nfile-key\n\n")
    settings = make_settings({"MONOLITH_SERVER__API_KEYS_FILE": json.dumps(str(keys))})
    async with running(app_factory(settings)) as client:
        assert (await client.get("/v1/models")).status_code == 401
        assert (await client.get("/v1/models", headers={"Authorization": "Bearer file-key"})).status_code == 200


async def test_probes_stay_open_but_read_no_paths_errors_or_swaps_without_a_key(app_factory: AppFactory) -> None:
    async with running(app_factory(make_settings(KEYS))) as client:
        anonymous = (await client.get("/health")).json()
        assert (await client.get("/ready")).status_code == 200
        for provider in anonymous["providers"].values():
            assert not {"model_path", "last_error", "failure", "swaps"} & set(provider)
            assert {"provider", "endpoint", "is_mock", "fallback_count", "loaded"} <= set(provider)
        assert anonymous["warnings"] and "send an API key" in anonymous["warnings"][0]
        full = (await client.get("/health", headers={"Authorization": "Bearer admin-s3cret"})).json()
        assert "model_path" in full["providers"]["llm"] and "llm: mock provider in use" in full["warnings"]
        keyed = (await client.get("/ready", headers={"Authorization": "Bearer key-one"})).json()
        assert "llm: mock provider in use" in keyed["warnings"]
        assert (await client.get("/metrics")).status_code == 200  # open to scrapers by default


async def test_metrics_can_need_a_key(app_factory: AppFactory) -> None:
    async with running(app_factory(make_settings({**KEYS, "MONOLITH_SERVER__METRICS_NEED_KEY": "true"}))) as client:
        assert (await client.get("/metrics")).status_code == 401
        assert (await client.get("/metrics", headers={"Authorization": "Bearer key-one"})).status_code == 200


async def test_rag_reload_needs_the_admin_token_even_without_keys(app_factory: AppFactory) -> None:
    async with running(app_factory(make_settings({"MONOLITH_RAG__ENABLED": "true"}))) as client:
        resp = await client.post("/v1/rag/reload")
        assert resp.status_code == 403 and resp.json()["error"]["code"] == "admin_disabled"


async def test_voice_websocket_keys_by_header_or_browser_subprotocol(app_factory: AppFactory) -> None:
    async with serve_live(app_factory(make_settings(KEYS))) as live:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(live.url)
        assert refused.value.response.status_code == 403
        async with websockets.connect(live.url, additional_headers={"Authorization": "Bearer key-one"}) as ws:
            assert json.loads(await ws.recv())["type"] == "session.created"
        # a browser cannot set headers: it offers the key as a subprotocol, beside the protocol's own
        async with websockets.connect(live.url, subprotocols=["monolith.voice.v1", "openai-insecure-api-key.key-two"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "monolith.voice.v1"  # the key is never echoed back
            assert json.loads(await ws.recv())["type"] == "session.created"
        with pytest.raises(websockets.InvalidStatus):
            await websockets.connect(live.url, subprotocols=["openai-insecure-api-key.wrong"])  # type: ignore[list-item]


async def test_websocket_origins_other_sites_are_refused_unless_allowed(app_factory: AppFactory) -> None:
    settings = make_settings({"MONOLITH_SERVER__CORS_ORIGINS": '["https://app.example"]'})
    async with serve_live(app_factory(settings)) as live:
        host = live.url.split("/")[2]
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(live.url, origin="https://evil.example")  # type: ignore[arg-type]
        assert refused.value.response.status_code == 403
        for origin in ("https://app.example", f"http://{host}"):  # allowed; same origin
            async with websockets.connect(live.url, origin=origin) as ws:  # type: ignore[arg-type]
                assert json.loads(await ws.recv())["type"] == "session.created"
        async with websockets.connect(live.url) as ws:  # no Origin: not a browser
            assert json.loads(await ws.recv())["type"] == "session.created"


async def test_cors_preflight_answers_only_allowed_origins(app_factory: AppFactory) -> None:
    settings = make_settings({"MONOLITH_SERVER__CORS_ORIGINS": '["https://app.example"]'})
    async with running(app_factory(settings)) as client:
        ok = await client.options("/v1/chat/completions", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST"})
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        other = await client.options("/v1/chat/completions", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers


async def test_keys_are_never_logged(app_factory: AppFactory, caplog: pytest.LogCaptureFixture) -> None:
    async with running(app_factory(make_settings(KEYS))) as client:
        await client.get("/v1/models", headers={"Authorization": "Bearer key-one"})
        await client.get("/v1/models", headers={"Authorization": "Bearer not-a-key"})
    text = "\n".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert "key-one" not in text and "not-a-key" not in text


def test_a_secret_that_looks_like_a_number_stays_a_string() -> None:
    settings = make_settings({"MONOLITH_SERVER__ADMIN_TOKEN": "123456"})
    assert settings.server.admin_token == "123456"


async def test_http_status_of_a_missing_key_is_401_with_www_authenticate(app_factory: AppFactory) -> None:
    async with running(app_factory(make_settings(KEYS))) as client:
        resp = await client.post("/v1/embeddings", json={"input": "x"})
        assert resp.status_code == 401 and resp.headers["www-authenticate"] == "Bearer"
        assert resp.json()["error"] == {"type": "authentication_error", "code": "invalid_api_key", "param": None,
                                        "message": "a valid API key is required: `Authorization: Bearer <key>`"}


