"""The serving side: load, search, atomic reload under load, watch, and what it reports."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monolith.config import MockEmbeddingConfig, Settings
from monolith.errors import InvalidRequest, Unavailable
from monolith.providers.embedding import EmbeddingProvider
from monolith.providers.mock_embedding import MockEmbedding
from monolith.rag.ingest import ingest
from monolith.rag.service import RagService

from .conftest import target_for


def service(settings: Settings, embedder: EmbeddingProvider, **overrides: object) -> RagService:
    return RagService(
        settings.rag.model_copy(update=overrides),
        index_path=settings.resolve(settings.rag.index_path),
        store_path=settings.resolve(settings.rag.store_path),
        embedder=embedder,
    )


@pytest.fixture
def mock_embedder() -> MockEmbedding:
    return MockEmbedding(MockEmbeddingConfig(delay_ms=1), model_id="mock-embedding")


async def test_missing_index_reports_itself_and_search_is_503(tiny_settings: Settings, mock_embedder: MockEmbedding) -> None:
    rag = service(tiny_settings, mock_embedder)
    await rag.start()
    status = rag.status()
    assert status["state"] == "missing" and status["loaded"] is False
    assert any("no chunk store" in w and "scripts/ingest.py" in w for w in rag.warnings())
    with pytest.raises(Unavailable, match="RAG index not loaded: no chunk store"):
        await rag.search("anything")


async def test_bad_queries_are_refused(tiny_settings: Settings, mock_embedder: MockEmbedding, corpus: Path) -> None:
    await ingest(corpus, target_for(tiny_settings), mock_embedder)
    rag = service(tiny_settings, mock_embedder)
    await rag.start()
    with pytest.raises(InvalidRequest, match="query is empty"):
        await rag.search("   ")
    with pytest.raises(InvalidRequest, match="top_k"):
        await rag.search("battery", top_k=0)
    assert await rag.search("battery", min_score=1.01) == []  # nothing scores above a perfect match
    await rag.close()


async def test_reload_during_concurrent_searches_never_fails_a_search(
    tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path
) -> None:
    target = target_for(tiny_settings)
    await ingest(corpus, target, minilm)
    rag = service(tiny_settings, minilm)
    await rag.start()
    results: list[str] = []
    stop = asyncio.Event()

    async def searcher() -> None:
        while not stop.is_set():
            passages = await rag.search("How long does the battery last?", top_k=1)
            results.append(passages[0].text)

    searchers = [asyncio.create_task(searcher()) for _ in range(8)]
    (corpus / "guide" / "battery.txt").write_text("The X300 battery lasts 60 hours on one charge.", encoding="utf-8")
    await ingest(corpus, target, minilm)
    for _ in range(5):
        await rag.reload()
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    stop.set()
    await asyncio.gather(*searchers)  # any failed search raises here

    assert rag.reloads == 6
    assert results[0].startswith("The X200") and results[-1] == "The X300 battery lasts 60 hours on one charge."
    assert len(results) > 20
    await rag.close()


async def test_a_failed_reload_keeps_the_old_index(tiny_settings: Settings, mock_embedder: MockEmbedding, corpus: Path) -> None:
    target = target_for(tiny_settings)
    await ingest(corpus, target, mock_embedder)
    rag = service(tiny_settings, mock_embedder)
    await rag.start()
    # A broken file renamed into place (as a copy tool would): the server keeps the store it has open.
    broken = target.store_path.with_name("broken")
    broken.write_bytes(b"not a database at all, just some bytes " * 200)
    broken.replace(target.store_path)
    with pytest.raises(Unavailable, match="not a chunk store"):
        await rag.reload()
    assert rag.status()["loaded"] is True
    assert any("the last reload failed" in w for w in rag.warnings())
    assert (await rag.search("refund for opened electronics", top_k=1))[0].source == "guide/returns.md"
    await rag.close()


async def test_watch_picks_up_a_finished_ingest(tiny_settings: Settings, mock_embedder: MockEmbedding, corpus: Path) -> None:
    rag = service(tiny_settings, mock_embedder, watch=True, watch_interval_s=0.05)
    await rag.start()
    assert rag.status()["state"] == "missing"
    await ingest(corpus, target_for(tiny_settings), mock_embedder)
    for _ in range(100):
        if rag.status()["loaded"]:
            break
        await asyncio.sleep(0.05)
    assert rag.status()["loaded"] and rag.status()["documents"] == 5
    (corpus / "new.md").write_text("Gift cards never expire.", encoding="utf-8")
    await ingest(corpus, target_for(tiny_settings), mock_embedder)
    for _ in range(100):
        if rag.status()["documents"] == 6:
            break
        await asyncio.sleep(0.05)
    assert (await rag.search("do gift cards expire", top_k=1))[0].source == "new.md"
    await rag.close()


async def test_use_gpu_without_gpu_faiss_is_a_warning_not_a_failure(
    tiny_settings: Settings, mock_embedder: MockEmbedding, corpus: Path
) -> None:
    await ingest(corpus, target_for(tiny_settings), mock_embedder)
    on_cpu = service(tiny_settings, mock_embedder, use_gpu=True)
    await on_cpu.start()
    assert any("embedding group runs on cpu" in w for w in on_cpu.warnings())
    await on_cpu.close()
    gpu_planned = RagService(
        tiny_settings.rag.model_copy(update={"use_gpu": True}),
        index_path=tiny_settings.resolve(tiny_settings.rag.index_path),
        store_path=tiny_settings.resolve(tiny_settings.rag.store_path),
        embedder=mock_embedder,
        gpu_device=0,
    )
    await gpu_planned.start()
    assert gpu_planned.status()["loaded"] and gpu_planned.status()["on_gpu"] is False
    assert any("no GPU support" in w and "faiss-gpu" in w for w in gpu_planned.warnings())
    await gpu_planned.close()


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
async def test_approximate_indexes_find_the_same_passage(
    tiny_settings: Settings, minilm: EmbeddingProvider, corpus: Path, kind: str
) -> None:
    import dataclasses

    from monolith.rag.service import index_params

    settings = tiny_settings.model_copy(update={"rag": tiny_settings.rag.model_copy(update={"index_type": kind})})
    target = dataclasses.replace(target_for(settings), params=index_params(settings.rag))
    await ingest(corpus, target, minilm)
    rag = service(settings, minilm)
    await rag.start()
    assert rag.status()["index_type"] == kind and rag.warnings() == []
    assert (await rag.search("東京タワーの高さ", top_k=1))[0].source == "tokyo.md"
    await rag.close()
