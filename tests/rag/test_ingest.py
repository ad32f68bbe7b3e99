"""scripts/ingest.py's engine: incremental, model-checked, and never leaves a broken index."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monolith.config import Settings
from monolith.providers.embedding import EmbeddingProvider
from monolith.rag import index
from monolith.rag.ingest import IngestError, ingest
from monolith.rag.service import RagService
from monolith.rag.store import ChunkStore

from ..conftest import REPO
from .conftest import CountingEmbedder, target_for


async def service_for(settings: Settings, embedder: EmbeddingProvider) -> RagService:
    rag = RagService(
        settings.rag,
        index_path=settings.resolve(settings.rag.index_path),
        store_path=settings.resolve(settings.rag.store_path),
        embedder=embedder,
    )
    await rag.start()
    return rag


def chunk_ids(settings: Settings) -> dict[str, list[int]]:
    store = ChunkStore(settings.resolve(settings.rag.store_path), readonly=True)
    try:
        rows = store.db.execute("SELECT path, id FROM chunks ORDER BY id").fetchall()
    finally:
        store.close()
    found: dict[str, list[int]] = {}
    for path, cid in rows:
        found.setdefault(path, []).append(cid)
    return found


def kill_midway(command: list[str], env: dict[str, str], store_path: Path) -> None:
    """Start the ingest script and SIGKILL it while it embeds (its temporary store exists)."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not index.stale_temps(store_path) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    time.sleep(0.5)  # well inside the embedding of ~2,400 sentences
    assert proc.poll() is None, "the ingest finished before it could be killed; make the corpus bigger"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


async def test_ingest_then_search_finds_the_right_passage_in_japanese_and_english(
    tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path
) -> None:
    summary = await ingest(corpus, target_for(tiny_settings), minilm)

    assert sorted(summary.added) == ["guide/battery.txt", "guide/returns.md", "guide/shipping.html", "kyoto.txt", "tokyo.md"]
    assert summary.failed == [("latin1.txt", "not UTF-8 (byte 3); convert it to UTF-8")]
    assert summary.written and summary.documents_total == 5 and summary.chunks_total >= 5

    rag = await service_for(tiny_settings, minilm)
    try:
        expectations = {
            "How long does the battery last?": "guide/battery.txt",
            "Can I get a refund for opened electronics?": "guide/returns.md",
            "How much is next day delivery?": "guide/shipping.html",
            "東京タワーの高さは何メートルですか": "tokyo.md",
            "金閣寺を建てたのは誰ですか": "kyoto.txt",
        }
        for query, source in expectations.items():
            passages = await rag.search(query, top_k=2)
            assert passages[0].source == source, (query, passages)
            assert passages[0].score > passages[1].score
        shipping = await rag.search("express shipping cost", top_k=1)
        assert "do not index this" not in shipping[0].text  # <script> is not text
        assert rag.status()["chunks"] == summary.chunks_total
    finally:
        await rag.close()


async def test_reingest_touches_only_changed_files(tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path) -> None:
    target = target_for(tiny_settings)
    await ingest(corpus, target, minilm)
    before = chunk_ids(tiny_settings)

    (corpus / "guide" / "battery.txt").write_text("The X300 battery lasts 60 hours on one charge.\n", encoding="utf-8")
    (corpus / "kyoto.txt").unlink()
    (corpus / "osaka.md").write_text("大阪城は豊臣秀吉が1583年に築いた城です。\n", encoding="utf-8")
    counting = CountingEmbedder(minilm)
    summary = await ingest(corpus, target, counting)

    assert summary.added == ["osaka.md"]
    assert summary.changed == ["guide/battery.txt"]
    assert summary.removed == ["kyoto.txt"]
    assert sorted(summary.unchanged) == ["guide/returns.md", "guide/shipping.html", "tokyo.md"]
    # Only the new and changed files' chunks were embedded...
    assert counting.texts == ["The X300 battery lasts 60 hours on one charge.", "大阪城は豊臣秀吉が1583年に築いた城です。"]
    after = chunk_ids(tiny_settings)
    # ...and unchanged files kept their chunks (same ids): they were not rewritten.
    for path in ("guide/returns.md", "guide/shipping.html", "tokyo.md"):
        assert after[path] == before[path]
    assert "kyoto.txt" not in after
    assert after["guide/battery.txt"] != before["guide/battery.txt"]

    rag = await service_for(tiny_settings, minilm)
    try:
        top = await rag.search("X300 battery hours", top_k=1)
        assert top[0].text == "The X300 battery lasts 60 hours on one charge."
        assert all(p.source != "kyoto.txt" for p in await rag.search("金閣寺", top_k=10))
    finally:
        await rag.close()

    again = await ingest(corpus, target, counting)
    assert not again.written and len(again.unchanged) == 5


async def test_index_built_with_another_model_is_refused(
    tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path
) -> None:
    from monolith.config import MockEmbeddingConfig
    from monolith.providers.mock_embedding import MockEmbedding

    target = target_for(tiny_settings)
    await ingest(corpus, target, minilm)
    mock = MockEmbedding(MockEmbeddingConfig(delay_ms=0), model_id="all-minilm-l6-v2")
    with pytest.raises(IngestError, match=r"built with all-minilm-l6-v2 \(sentence-transformers, 384 dims\).*--rebuild"):
        await ingest(corpus, target, mock)

    rebuilt = await ingest(corpus, target, mock, rebuild=True)
    assert rebuilt.written and len(rebuilt.added) == 5

    # The server side refuses too: a query embedded by MiniLM means nothing to a mock-built index.
    rag = await service_for(tiny_settings, minilm)
    try:
        assert any("built with all-minilm-l6-v2 (mock, 384 dims)" in w for w in rag.warnings())
        from monolith.errors import Unavailable

        with pytest.raises(Unavailable, match="rebuild"):
            await rag.search("battery")
    finally:
        await rag.close()


async def test_a_killed_ingest_leaves_the_previous_index_serving(
    tiny_settings: Settings, tiny_root: Path, minilm: EmbeddingProvider, corpus: Path, tmp_path: Path
) -> None:
    target = target_for(tiny_settings)
    await ingest(corpus, target, minilm)
    old_index = target.index_path.read_bytes()
    old_store = target.store_path.read_bytes()

    # Enough new text that embedding takes a few seconds, then SIGKILL in the middle of it.
    for i in range(40):
        sentences = " ".join(f"Fact {i}-{j}: the widget model {i} weighs {j} grams." for j in range(60))
        (corpus / f"bulk{i:02d}.txt").write_text(sentences, encoding="utf-8")
    env = {**os.environ, "MONOLITH_RAG__INDEX_PATH": f'"{target.index_path}"', "MONOLITH_RAG__STORE_PATH": f'"{target.store_path}"'}
    command = [sys.executable, str(REPO / "scripts" / "ingest.py"), "--config", str(tiny_root / "config.toml"),
               "--source", str(corpus), "--quiet"]
    await asyncio.to_thread(kill_midway, command, env, target.store_path)

    assert index.stale_temps(target.store_path)  # it died mid-way, leaving its temporary store
    assert target.index_path.read_bytes() == old_index
    assert target.store_path.read_bytes() == old_store
    rag = await service_for(tiny_settings, minilm)
    try:
        assert rag.status()["state"] == "loaded" and rag.warnings() == []
        assert (await rag.search("How long does the battery last?", top_k=1))[0].source == "guide/battery.txt"
    finally:
        await rag.close()

    # The next run cleans up and finishes the job.
    (corpus / "bulk00.txt").write_text("A short file.", encoding="utf-8")
    for i in range(1, 40):
        (corpus / f"bulk{i:02d}.txt").unlink()
    summary = await ingest(corpus, target, minilm)
    assert summary.added == ["bulk00.txt"]
    assert not index.stale_temps(target.store_path) and not index.stale_temps(target.index_path)


async def test_crash_between_the_two_renames_serves_the_old_store(
    tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = target_for(tiny_settings)
    await ingest(corpus, target, minilm)
    (corpus / "guide" / "battery.txt").write_text("The X300 battery lasts 60 hours.", encoding="utf-8")

    real_replace = os.replace
    calls: list[str] = []

    def replace_then_die(src: str | Path, dst: str | Path) -> None:
        calls.append(str(dst))
        if len(calls) == 2:
            raise KeyboardInterrupt("power cut")  # the store's rename never happens
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        await ingest(corpus, target, minilm)
    monkeypatch.setattr(os, "replace", real_replace)
    assert calls == [str(target.index_path), str(target.store_path)]

    rag = await service_for(tiny_settings, minilm)
    try:
        assert rag.status()["loaded"]
        assert any("does not belong to the chunk store" in w for w in rag.warnings())
        top = await rag.search("How long does the battery last?", top_k=1)
        assert top[0].source == "guide/battery.txt" and "40 hours" in top[0].text  # the old content
    finally:
        await rag.close()


async def test_two_ingests_at_once_the_second_is_refused(
    tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path
) -> None:
    import fcntl

    target = target_for(tiny_settings)
    target.store_path.parent.mkdir(parents=True)
    lock = target.store_path.with_name(f".{target.store_path.name}.lock")
    with lock.open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(IngestError, match="another ingest"):
            await ingest(corpus, target, minilm)


async def test_missing_source_folder_is_a_clear_error(tiny_settings: Settings, minilm: EmbeddingProvider, tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="does not exist"):
        await ingest(tmp_path / "nope", target_for(tiny_settings), minilm)


async def test_changed_chunking_rechunks_everything(tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path) -> None:
    import dataclasses

    target = target_for(tiny_settings)
    await ingest(corpus, target, minilm)
    smaller = dataclasses.replace(target, chunk_size=60, chunk_overlap=10)
    summary = await ingest(corpus, smaller, minilm)
    assert summary.notes and "re-chunking" in summary.notes[0]
    assert summary.chunks_embedded == summary.chunks_total > 5
