"""The serving side of the pgvector backend: searches read PostgreSQL live, nothing to reload.

Every search reads the meta (which model made the vectors) and the best chunks from one
snapshot, so a committed ingest is seen by every server sharing the database at once, and a
running one by none. A background check re-reads the meta every `[rag] watch_interval_s` to keep
/ready's counts and state true (an unreachable database shows there; the server does not stop)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime
from typing import Any

from monolith.config import RAGConfig
from monolith.errors import Unavailable
from monolith.rag.embedder import Embedder
from monolith.rag.passages import Passage
from monolith.rag.postgres import SCHEMA_VERSION, PgReader, PgUnavailable, redact_dsn
from monolith.rag.service import RagState, check_query, model_mismatch

log = logging.getLogger(__name__)


class PgVectorRag:
    """`RagBackend` on PostgreSQL + pgvector."""

    def __init__(self, config: RAGConfig, *, embedder: Embedder, reader: PgReader | None = None) -> None:
        self.config = config
        self.embedder = embedder
        self.database = redact_dsn(config.dsn)
        self.reader = reader or PgReader(config.dsn, config.pg_schema, config.hnsw_ef_search)
        self.state: RagState = "loading"
        self.error: str | None = None
        self.meta: dict[str, str] = {}
        self.checked_at: float | None = None
        self.reloads = 0
        self._checker: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        log.info("rag: pgvector at %s, schema %s", self.database, self.config.pg_schema)
        await self._check()
        self._checker = asyncio.create_task(self._check_every(), name="monolith-rag-pg-check")

    async def reload(self) -> dict[str, Any]:
        """Nothing to load (searches read the database live): re-read the status and report it."""
        await self._check()
        if self.state != "loaded":
            raise Unavailable(f"RAG index not loaded: {self.error}", code="rag_unavailable")
        self.reloads += 1
        return self.status()

    async def close(self) -> None:
        if self._checker is not None:
            self._checker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._checker
        await self.reader.close()

    async def _check_every(self) -> None:
        while True:
            await asyncio.sleep(self.config.watch_interval_s)
            try:
                await self._check()
            except Exception:  # a status check must never end the checking
                log.exception("rag: checking the pgvector database failed")

    async def _check(self) -> None:
        try:
            meta = await self.reader.meta()
        except PgUnavailable as exc:
            self._failed(exc)
            return
        self._seen(meta)

    def _seen(self, meta: dict[str, str]) -> None:
        self.checked_at = time.time()
        version = meta.get("schema_version")
        if version not in (None, SCHEMA_VERSION):
            self._failed(PgUnavailable(f"schema {self.config.pg_schema} at {self.database} has schema version "
                                       f"{version}; this monolith reads {SCHEMA_VERSION}"))
            return
        if "embedding" not in meta:
            self._failed(PgUnavailable(self._never_ingested(), missing=True))
            return
        if self.state != "loaded" or meta.get("build_id") != self.meta.get("build_id"):
            log.info("rag: pgvector index", extra={"chunks": meta.get("chunks"), "embedding": meta.get("embedding"),
                                                    "built_at": meta.get("built_at")})
        self.meta, self.state, self.error = meta, "loaded", None

    def _failed(self, exc: PgUnavailable) -> None:
        message = self._never_ingested() if exc.missing else str(exc)
        if message != self.error:
            log.warning("rag: %s", message)
        self.state = "missing" if exc.missing else "failed"
        self.error = message
        self.meta = {}

    def _never_ingested(self) -> str:
        return (f"no RAG index in schema {self.config.pg_schema} at {self.database}: build one with "
                "`python scripts/ingest.py --source DOCS` ([rag] backend = \"pgvector\")")

    # --- search ----------------------------------------------------------------------------

    async def search(self, query: str, *, top_k: int | None = None, min_score: float | None = None) -> list[Passage]:
        k, floor = check_query(self.config, query, top_k, min_score)
        vectors, made_by = await self.embedder.embed_with_identity([query], kind="query")
        try:
            meta, hits = await self.reader.search(vectors[0], k, made_by)
        except PgUnavailable as exc:
            self._failed(exc)
            raise Unavailable(f"RAG index not loaded: {self.error}", code="rag_unavailable") from None
        self._seen(meta)
        if self.state != "loaded":
            raise Unavailable(f"RAG index not loaded: {self.error}", code="rag_unavailable")
        if meta["embedding"] != made_by:
            raise model_mismatch(meta["embedding"], made_by)
        return [Passage(source=h.source, text=h.text, score=h.score, chunk_id=h.id) for h in hits if h.score >= floor]

    # --- reporting -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        meta = self.meta
        return {
            "enabled": True,
            "backend": "pgvector",
            "loaded": self.state == "loaded",
            "state": self.state,
            "database": self.database,
            "schema": self.config.pg_schema,
            "chunks": int(meta.get("chunks", 0)),
            "documents": int(meta.get("documents", 0)),
            "embedding": meta.get("embedding"),
            "dimension": int(meta.get("dimension", 0)),
            "index_type": meta.get("index_type"),
            "built_at": meta.get("built_at"),
            "checked_at": datetime.fromtimestamp(self.checked_at, UTC).isoformat(timespec="seconds")
            if self.checked_at else None,
            "on_gpu": False,
            "reloads": self.reloads,
            "error": self.error,
        }

    def warnings(self) -> list[str]:
        found: list[str] = []
        if self.state in ("missing", "failed"):
            found.append(f"rag: index not loaded: {self.error}")
        if self.config.use_gpu:
            found.append("rag: use_gpu applies to the faiss backend; pgvector searches inside PostgreSQL")
        built_with = self.meta.get("embedding")
        serving = self.embedder.identity
        if built_with and self.embedder.dimension and serving != built_with:
            found.append(
                f"rag: the index was built with {built_with} but {serving} serves embeddings; "
                "searches are refused until they match"
            )
        return found
