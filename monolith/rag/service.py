"""The serving side of RAG: the loaded index + store, search, reload, and what /ready shows.

Each load makes a `Generation` (an index and the store it was built from). Searches take the
current generation when they start and finish on it; a reload builds the next generation off
the event loop and swaps one reference, so nothing in flight sees a half-loaded index. An old
generation is closed when its last search ends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from monolith.config import RAGConfig
from monolith.errors import InvalidRequest, Unavailable
from monolith.rag import index
from monolith.rag.embedder import Embedder
from monolith.rag.index import IndexParams, IndexUnavailable
from monolith.rag.ingest import index_matches_store
from monolith.rag.passages import Passage
from monolith.rag.store import ChunkStore, StoreError

log = logging.getLogger(__name__)

RagState = Literal["loading", "loaded", "missing", "failed"]
MAX_QUERY_CHARS = 4000


class RagLoadError(Exception):
    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


class RagBackend(Protocol):
    """What the API and the voice sessions use, whichever backend serves: `RagService` (FAISS
    files, reloaded) or `PgVectorRag` (PostgreSQL, read live)."""

    async def start(self) -> None: ...

    async def reload(self) -> dict[str, Any]: ...

    async def close(self) -> None: ...

    async def search(self, query: str, *, top_k: int | None = None, min_score: float | None = None) -> list[Passage]: ...

    def status(self) -> dict[str, Any]: ...

    def warnings(self) -> list[str]: ...


def check_query(config: RAGConfig, query: str, top_k: int | None, min_score: float | None) -> tuple[int, float]:
    """(k, score floor) for a search, or InvalidRequest."""
    if not query.strip():
        raise InvalidRequest("query is empty", code="empty_query", param="query")
    if len(query) > MAX_QUERY_CHARS:
        raise InvalidRequest(f"query is longer than {MAX_QUERY_CHARS} characters", param="query")
    k = config.top_k if top_k is None else top_k
    if not 1 <= k <= 100:
        raise InvalidRequest("top_k must be between 1 and 100", param="top_k")
    return k, config.min_score if min_score is None else min_score


def model_mismatch(built_with: str, made_by: str) -> Unavailable:
    return Unavailable(
        f"the RAG index was built with {built_with}, but embeddings now come from {made_by}; "
        "fix the embedding provider or rebuild: scripts/ingest.py --rebuild",
        code="rag_model_mismatch",
    )


def index_params(config: RAGConfig) -> IndexParams:
    return IndexParams(config.index_type, config.hnsw_m, config.hnsw_ef_search, config.ivf_nprobe)


def _file_signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


@dataclass
class Generation:
    store: ChunkStore
    index: Any
    meta: dict[str, str]
    signature: tuple[int, int, int] | None
    loaded_at: float = field(default_factory=time.time)
    on_gpu: bool = False
    gpu_resources: Any = None
    warnings: list[str] = field(default_factory=list)
    searches: int = 0  # in flight
    retired: bool = False
    # FAISS GPU indexes are not thread safe, "even for read only functions" (FAISS wiki, Threads
    # and asynchronous calls): one StandardGpuResources has one scratch area. CPU indexes are.
    gpu_lock: threading.Lock = field(default_factory=threading.Lock)

    def lookup(self, query: np.ndarray, k: int, min_score: float) -> list[Passage]:
        with self.gpu_lock if self.on_gpu else contextlib.nullcontext():
            found = index.search(self.index, query, k)
        hits = [(cid, score) for cid, score in found if score >= min_score]
        stored = self.store.chunks(cid for cid, _ in hits)
        return [
            Passage(source=stored[cid].source, text=stored[cid].text, score=score, chunk_id=cid)
            for cid, score in hits
            if cid in stored
        ]

    def close(self) -> None:
        self.store.close()
        self.index = None
        self.gpu_resources = None


def open_generation(config: RAGConfig, index_path: Path, store_path: Path, gpu_device: int | None) -> Generation:
    """Load the store and its index (blocking: run it off the event loop)."""
    if not index.faiss_available():
        raise RagLoadError("FAISS is not installed: pip install faiss-cpu (faiss-gpu on CUDA hosts)")
    if not store_path.is_file():
        raise RagLoadError(
            f"no chunk store at {store_path}: build one with "
            f"`python scripts/ingest.py --source DOCS --index {index_path}`",
            missing=True,
        )
    signature = _file_signature(store_path)
    try:
        store = ChunkStore(store_path, readonly=True)
        meta = store.meta()
    except StoreError as exc:
        raise RagLoadError(str(exc)) from exc
    try:
        if "embedding" not in meta:
            raise RagLoadError(f"{store_path} was never completed by an ingest; run scripts/ingest.py again")
        params = index_params(config)
        warnings: list[str] = []
        if index_matches_store(index_path, meta):
            faiss_index = index.read(index_path, params)
        else:
            # An ingest stopped between its two renames, or a file was copied by hand: the store
            # is the source of truth, so rebuild the index from its vectors and keep serving.
            why = "is missing" if not index_path.exists() else "does not belong to the chunk store"
            warnings.append(
                f"rag: the index file {index_path} {why}; rebuilt it in memory from {store_path} "
                "(run scripts/ingest.py to write it again)"
            )
            ids, vectors = store.vectors(int(meta["dimension"]))
            faiss_index = index.build(ids, vectors, int(meta["dimension"]), params)
        generation = Generation(store, faiss_index, meta, signature, warnings=warnings)
        _place(generation, config, gpu_device)
        return generation
    except BaseException:
        store.close()
        raise


def _place(generation: Generation, config: RAGConfig, gpu_device: int | None) -> None:
    if not config.use_gpu:
        return
    if gpu_device is None:
        generation.warnings.append("rag: use_gpu is set but the embedding group runs on cpu; the index stays on cpu")
    elif generation.meta.get("index_type") == "hnsw":
        generation.warnings.append("rag: FAISS cannot move an HNSW index to a GPU; it stays on cpu")
    else:
        try:
            generation.index, generation.gpu_resources = index.to_gpu(generation.index, gpu_device)
            generation.on_gpu = True
        except IndexUnavailable as exc:
            generation.warnings.append(f"rag: use_gpu is set but {exc}; the index stays on cpu")


class RagService:
    def __init__(
        self,
        config: RAGConfig,
        *,
        index_path: Path,
        store_path: Path,
        embedder: Embedder,
        gpu_device: int | None = None,
    ) -> None:
        self.config = config
        self.index_path = index_path
        self.store_path = store_path
        self.embedder = embedder
        self.gpu_device = gpu_device
        self.state: RagState = "loading"
        self.error: str | None = None
        self.current: Generation | None = None
        self.reloads = 0
        self._reload_lock = asyncio.Lock()
        self._watcher: asyncio.Task[None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Load what is there (a missing index is reported, not fatal), then watch if asked."""
        with contextlib.suppress(Unavailable):
            await self.reload()
        if self.config.watch:
            self._watcher = asyncio.create_task(self._watch(), name="monolith-rag-watch")

    async def reload(self) -> dict[str, Any]:
        """Load the store and index from disk and swap them in; on failure the old ones keep serving."""
        async with self._reload_lock:
            try:
                fresh = await asyncio.to_thread(
                    open_generation, self.config, self.index_path, self.store_path, self.gpu_device
                )
            except (RagLoadError, StoreError, OSError, RuntimeError) as exc:
                self.error = str(exc)
                if self.current is None:
                    self.state = "missing" if isinstance(exc, RagLoadError) and exc.missing else "failed"
                log.warning("rag: load failed: %s", exc)
                raise Unavailable(f"RAG index not loaded: {exc}", code="rag_unavailable") from exc
            old, self.current = self.current, fresh
            self.state, self.error = "loaded", None
            self.reloads += 1
            if old is not None:
                old.retired = True
                if old.searches == 0:
                    old.close()
            log.info(
                "rag: index loaded",
                extra={"chunks": fresh.meta.get("chunks"), "embedding": fresh.meta.get("embedding"),
                       "index_type": fresh.meta.get("index_type"), "built_at": fresh.meta.get("built_at")},
            )
            return self.status()

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self.current is not None:
            self.current.close()
            self.current = None

    async def _watch(self) -> None:
        """Reload when an ingest has replaced the store (its commit point)."""
        while True:
            await asyncio.sleep(self.config.watch_interval_s)
            seen = self.current.signature if self.current is not None else None
            now = await asyncio.to_thread(_file_signature, self.store_path)
            if now is not None and now != seen:
                log.info("rag: %s changed; reloading", self.store_path)
                with contextlib.suppress(Unavailable):
                    await self.reload()

    # --- search ----------------------------------------------------------------------------

    async def search(self, query: str, *, top_k: int | None = None, min_score: float | None = None) -> list[Passage]:
        k, floor = check_query(self.config, query, top_k, min_score)
        generation = self.current
        if generation is None:
            raise Unavailable(f"RAG index not loaded: {self.error or 'still loading'}", code="rag_unavailable")
        generation.searches += 1
        try:
            vectors, made_by = await self.embedder.embed_with_identity([query], kind="query")
            built_with = generation.meta["embedding"]
            if made_by != built_with:
                raise model_mismatch(built_with, made_by)
            return await asyncio.to_thread(generation.lookup, vectors[0], k, floor)
        finally:
            generation.searches -= 1
            if generation.retired and generation.searches == 0:
                generation.close()

    # --- reporting -------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        gen = self.current
        meta = gen.meta if gen is not None else {}
        return {
            "enabled": True,
            "backend": "faiss",
            "loaded": gen is not None,
            "state": self.state,
            "index_path": str(self.index_path),
            "store_path": str(self.store_path),
            "chunks": int(meta.get("chunks", 0)),
            "documents": int(meta.get("documents", 0)),
            "embedding": meta.get("embedding"),
            "dimension": int(meta.get("dimension", 0)),
            "index_type": meta.get("index_type"),
            "built_at": meta.get("built_at"),
            "loaded_at": datetime.fromtimestamp(gen.loaded_at, UTC).isoformat(timespec="seconds") if gen else None,
            "on_gpu": gen.on_gpu if gen is not None else False,
            "reloads": self.reloads,
            "error": self.error,
        }

    def warnings(self) -> list[str]:
        found: list[str] = []
        gen = self.current
        if gen is None:
            if self.state != "loading":
                found.append(f"rag: index not loaded: {self.error}")
            return found
        found.extend(gen.warnings)
        if self.error:
            found.append(f"rag: the last reload failed ({self.error}); the previous index still serves")
        serving = self.embedder.identity
        if self.embedder.dimension and serving != gen.meta["embedding"]:
            found.append(
                f"rag: the index was built with {gen.meta['embedding']} but {serving} serves embeddings; "
                "searches are refused until they match"
            )
        return found

