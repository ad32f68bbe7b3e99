"""/v1/rag/search, /v1/rag/reload and the RAG part of /ready, on the tiny real embedding model."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from monolith.config import Settings
from monolith.providers.embedding import EmbeddingProvider
from monolith.rag.ingest import ingest

from ..conftest import build_app, load_tiny, running
from ..rag.conftest import CORPUS, target_for


def settings_for(tiny_root: Path, tmp_path: Path, **env: str) -> Settings:
    base = {
        "MONOLITH_RAG__INDEX_PATH": f'"{tmp_path / "faiss" / "index.bin"}"',
        "MONOLITH_RAG__STORE_PATH": f'"{tmp_path / "rag" / "chunks.sqlite3"}"',
    }
    return load_tiny(tiny_root, {**base, **env})


def app_for(settings: Settings) -> Starlette:
    return build_app(settings)


async def ingest_corpus(settings: Settings, app: Starlette, folder: Path) -> None:
    embedder = app.state.registry.slots["embedding"].primary
    assert isinstance(embedder, EmbeddingProvider)
    await ingest(folder, target_for(settings), embedder)


@pytest.fixture
async def served(tiny_root: Path, tmp_path: Path) -> AsyncIterator[tuple[Settings, Starlette, httpx.AsyncClient]]:
    settings = settings_for(tiny_root, tmp_path, MONOLITH_SERVER__ADMIN_TOKEN='"s3cret"')
    app = app_for(settings)
    async with running(app) as client:
        client.headers["Authorization"] = "Bearer s3cret"  # the operator: /ready in full, reloads allowed
        yield settings, app, client


async def test_without_an_index_ready_is_degraded_and_search_is_503(served: tuple[Settings, Starlette, httpx.AsyncClient]) -> None:
    _, _, client = served
    ready = (await client.get("/ready")).json()
    assert ready["rag"]["loaded"] is False and ready["rag"]["state"] == "missing"
    assert ready["status"] == "degraded"
    assert any(w.startswith("rag: index not loaded: no chunk store") for w in ready["warnings"])
    resp = await client.post("/v1/rag/search", json={"query": "battery"})
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "rag_unavailable"
    assert "scripts/ingest.py" in resp.json()["error"]["message"]


async def test_ingest_reload_then_search(served: tuple[Settings, Starlette, httpx.AsyncClient], tmp_path: Path) -> None:
    settings, app, client = served
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    await ingest_corpus(settings, app, docs)

    assert (await client.post("/v1/rag/reload", headers={"Authorization": ""})).status_code == 401
    wrong = await client.post("/v1/rag/reload", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    reloaded = await client.post("/v1/rag/reload", headers={"Authorization": "Bearer s3cret"})
    assert reloaded.status_code == 200 and reloaded.json()["loaded"] is True

    ready = (await client.get("/ready")).json()
    rag = ready["rag"]
    assert rag["loaded"] is True and rag["documents"] == 5 and rag["chunks"] >= 5
    assert rag["embedding"] == "all-minilm-l6-v2 (sentence-transformers, 384 dims)"
    assert rag["index_type"] == "flat" and rag["built_at"] and rag["loaded_at"]
    assert not any(w.startswith("rag:") for w in ready["warnings"])

    resp = await client.post("/v1/rag/search", json={"query": "東京タワーの高さは？", "top_k": 2})
    assert resp.status_code == 200
    passages = resp.json()["passages"]
    assert len(passages) == 2
    assert passages[0]["source"] == "tokyo.md" and "333メートル" in passages[0]["text"]
    assert passages[0]["score"] > passages[1]["score"]

    high_bar = await client.post("/v1/rag/search", json={"query": "東京タワーの高さは？", "min_score": 0.99})
    assert high_bar.json()["passages"] == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"query": ""}, "query is empty"),
        ({"query": "x", "top_k": 0}, "top_k"),
        ({"query": "x", "top_k": 101}, "top_k"),
        ({"top_k": 3}, "query"),
        ({"query": "x", "k": 3}, "k"),
    ],
)
async def test_bad_search_requests_are_400(
    served: tuple[Settings, Starlette, httpx.AsyncClient], tmp_path: Path, body: dict[str, object], message: str
) -> None:
    settings, app, client = served
    await ingest_corpus(settings, app, CORPUS)
    await client.post("/v1/rag/reload", headers={"Authorization": "Bearer s3cret"})
    resp = await client.post("/v1/rag/search", json=body)
    assert resp.status_code == 400
    assert message in resp.json()["error"]["message"]


async def test_rag_disabled_says_so(tiny_root: Path, tmp_path: Path) -> None:
    app = app_for(settings_for(tiny_root, tmp_path, MONOLITH_RAG__ENABLED="false"))
    async with running(app) as client:
        resp = await client.post("/v1/rag/search", json={"query": "battery"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "rag_disabled"
        assert (await client.get("/ready")).json()["rag"] == {"enabled": False, "loaded": False}


async def test_an_index_present_at_startup_is_loaded_before_ready(tiny_root: Path, tmp_path: Path) -> None:
    settings = settings_for(tiny_root, tmp_path)
    first = app_for(settings)
    async with running(first):
        await ingest_corpus(settings, first, CORPUS)
    app = app_for(settings)
    async with running(app) as client:
        ready = (await client.get("/ready")).json()
        assert ready["rag"]["state"] == "loaded" and ready["rag"]["documents"] == 5
        assert (await client.post("/v1/rag/search", json={"query": "express shipping price"})).json()["passages"][0]["source"] == "guide/shipping.html"
