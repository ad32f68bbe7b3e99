"""Two servers on one PostgreSQL (`[rag] backend = "pgvector"`): an ingest is searchable through
both at once, with no reload; /health and /ready show the backend, never the password."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from monolith.providers.embedding import EmbeddingProvider
from monolith.rag.ingest import ingest
from monolith.rag.postgres import PgTarget

from ..conftest import PG_PASSWORD, build_app, running
from ..rag.conftest import CORPUS, pg_settings

TOKYO = {"query": "東京タワーの高さは？", "top_k": 2}


async def ready_rag(client: httpx.AsyncClient) -> dict[str, Any]:
    rag: dict[str, Any] = (await client.get("/ready")).json()["rag"]
    return rag


async def test_two_servers_share_one_database_and_need_no_reload(
    tiny_root: Path, pg_dsn: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    settings = pg_settings(tiny_root, pg_dsn, {"MONOLITH_SERVER__ADMIN_TOKEN": '"s3cret"',
                                               "MONOLITH_RAG__WATCH_INTERVAL_S": "0.1"})
    first, second = build_app(settings), build_app(settings)
    async with running(first) as one, running(second) as two:
        for client in (one, two):
            client.headers["Authorization"] = "Bearer s3cret"

        # Before any ingest: reachable, empty; degraded with a warning naming the ingest command.
        ready = (await two.get("/ready")).json()
        assert ready["status"] == "degraded"
        assert ready["rag"]["backend"] == "pgvector" and ready["rag"]["state"] == "missing"
        assert ready["rag"]["database"].startswith("postgresql://postgres:***@/t_")
        assert any("no RAG index in schema monolith_rag" in w and "scripts/ingest.py" in w for w in ready["warnings"])
        empty = await two.post("/v1/rag/search", json=TOKYO)
        assert empty.status_code == 503 and empty.json()["error"]["code"] == "rag_unavailable"

        embedder = first.state.registry.slots["embedding"].primary
        assert isinstance(embedder, EmbeddingProvider)
        target = PgTarget.from_config(settings.rag)
        await ingest(docs, target, embedder)

        # No reload anywhere: the other server answers from the committed ingest at once.
        from_two = await two.post("/v1/rag/search", json=TOKYO)
        assert from_two.status_code == 200
        passages = from_two.json()["passages"]
        assert passages[0]["source"] == "tokyo.md" and "333メートル" in passages[0]["text"]
        assert passages[0]["score"] > passages[1]["score"]
        assert (await one.post("/v1/rag/search", json=TOKYO)).json() == from_two.json()

        (docs / "tokyo.md").write_text("東京タワーの高さは333メートル、色は赤と白です。", encoding="utf-8")
        await ingest(docs, target, embedder)
        for client in (one, two):
            top = (await client.post("/v1/rag/search", json=TOKYO)).json()["passages"][0]
            assert top["text"] == "東京タワーの高さは333メートル、色は赤と白です。"

        # /ready catches up by itself on both (the background check), to the same build.
        built = await wait_same_build(one, two)
        assert built["state"] == "loaded" and built["documents"] == 5 and built["index_type"] == "hnsw"
        reloaded = await one.post("/v1/rag/reload")
        assert reloaded.status_code == 200 and reloaded.json()["loaded"] is True

        for client in (one, two):
            for path in ("/health", "/ready"):
                assert PG_PASSWORD not in (await client.get(path)).text
        anonymous = (await two.get("/ready", headers={"Authorization": ""})).json()["rag"]
        assert anonymous["backend"] == "pgvector" and anonymous["documents"] == 5
        assert "database" not in anonymous and "error" not in anonymous
    assert "rag: pgvector at postgresql://postgres:***@/t_" in caplog.text
    assert PG_PASSWORD not in caplog.text


async def wait_same_build(one: httpx.AsyncClient, two: httpx.AsyncClient, timeout: float = 10) -> dict[str, Any]:
    """Both servers' /ready rag, once they show the same, latest build."""
    deadline = time.monotonic() + timeout
    while True:
        a, b = await ready_rag(one), await ready_rag(two)
        if a["built_at"] and a["built_at"] == b["built_at"] and a["chunks"] == b["chunks"] and a["state"] == b["state"]:
            return a
        assert time.monotonic() < deadline, (a, b)
        await asyncio.sleep(0.05)


async def test_an_unreachable_database_at_start_is_degraded_not_a_crash(
    tiny_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dsn = f"postgresql://monolith:{PG_PASSWORD}@/rag?host={tmp_path}"  # no server on that socket
    app = build_app(pg_settings(tiny_root, dsn))
    async with running(app) as client:
        ready = (await client.get("/ready")).json()
        assert ready["status"] == "degraded"
        assert ready["rag"]["state"] == "failed" and ready["rag"]["loaded"] is False
        assert ready["rag"]["error"].startswith("cannot connect to PostgreSQL at postgresql://monolith:***@/rag")
        health = await client.get("/health")
        assert health.status_code == 200 and health.json()["status"] == "degraded"
        assert PG_PASSWORD not in health.text + (await client.get("/ready")).text
        search = await client.post("/v1/rag/search", json=TOKYO)
        assert search.status_code == 503 and "cannot connect to PostgreSQL" in search.json()["error"]["message"]
        assert PG_PASSWORD not in search.text
        chat = await client.post("/v1/chat/completions", json={
            "model": "default", "messages": [{"role": "user", "content": "hi"}], "rag": True})
        assert chat.status_code == 503 and PG_PASSWORD not in chat.text
    assert PG_PASSWORD not in caplog.text
