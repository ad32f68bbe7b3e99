"""Incremental ingest: source folder -> chunks -> vectors -> a new store and index, swapped in whole.

1. Copy the current store to a temporary file (SQLite's backup API; the server keeps reading).
2. Compare the folder with the store by file hash: unchanged files are skipped, changed ones
   have their chunks replaced, deleted ones are removed; unreadable ones are reported and
   keep whatever they had.
3. Embed only the new chunks, in batches; write them with their vectors.
4. Build the FAISS index from every vector in the store and write it to a temporary file.
5. Record the index's size and SHA-256 in the store, then rename the index, then the store.

A crash before step 5 leaves the previous index and store untouched (the temporary files are
cleaned up by the next run). A crash between the two renames leaves a new index beside the old
store; the store's recorded hash shows the mismatch and the loader rebuilds the index from the
store's vectors, so the previous content still serves.

With the pgvector backend (a `PgTarget`) the same steps run inside one PostgreSQL transaction:
the comparison reads the database, changed and removed files' rows are deleted and new ones
inserted (the HNSW index follows), and the meta is written; the commit publishes the whole run
at once. Anything that stops it before the commit, a kill included, leaves the previous content
as it was, and servers reading the database see either all of the run or none of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np

from monolith.rag import documents, index
from monolith.rag.embedder import Embedder
from monolith.rag.index import IndexParams
from monolith.rag.postgres import SCHEMA_VERSION as PG_SCHEMA_VERSION
from monolith.rag.postgres import PgTarget, PgUnavailable, PgWriter
from monolith.rag.splitting import split_text
from monolith.rag.store import SCHEMA_VERSION, ChunkStore, StoreError, copy_store

log = logging.getLogger(__name__)

EMBED_BATCH = 64


class IngestError(Exception):
    """The ingest cannot go on; nothing was changed."""


@dataclass
class IngestSummary:
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_total: int = 0
    documents_total: int = 0
    seconds: float = 0.0
    written: bool = False

    def lines(self) -> list[str]:
        out = [
            f"files: {len(self.added)} added, {len(self.changed)} changed, {len(self.removed)} removed, "
            f"{len(self.unchanged)} unchanged (skipped), {len(self.failed)} unreadable",
            f"chunks: {self.chunks_embedded} embedded, {self.chunks_total} in the index "
            f"({self.documents_total} documents)",
            f"seconds: {self.seconds:.2f}" + ("" if self.written else " (nothing changed; index left as it was)"),
        ]
        out.extend(f"unreadable: {path}: {reason}" for path, reason in self.failed)
        out.extend(f"note: {note}" for note in self.notes)
        return out


@dataclass(frozen=True)
class IngestTarget:
    index_path: Path
    store_path: Path
    params: IndexParams
    chunk_size: int
    chunk_overlap: int


Progress = Callable[[int], None]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def index_matches_store(index_path: Path, meta: dict[str, str]) -> bool:
    """Does the index file on disk belong to this store (same size and SHA-256)?"""
    if not index_path.is_file() or "index_sha256" not in meta:
        return False
    size, digest = index.file_digest(index_path)
    return str(size) == meta.get("index_size") and digest == meta["index_sha256"]


async def ingest(
    source: Path,
    target: IngestTarget | PgTarget,
    embedder: Embedder,
    *,
    rebuild: bool = False,
    progress_factory: Callable[[int], Progress] | None = None,
) -> IngestSummary:
    """Bring the index and store at `target` up to date with `source`. See the module doc.

    File, database and FAISS work runs in a worker thread; only the embedding calls are awaited
    here, so the same code can run inside the server's event loop."""
    job: _Job | _PgJob
    if isinstance(target, PgTarget):
        job = _PgJob(source, target, embedder.identity, embedder.dimension, rebuild)
    else:
        job = _Job(source, target, embedder.identity, embedder.dimension, rebuild)
    try:
        to_embed = await asyncio.to_thread(job.prepare)
        if to_embed is None:
            return job.finish(written=False)
        split = [(doc, split_text(doc.text, size=target.chunk_size, overlap=target.chunk_overlap)) for doc in to_embed]
        progress = progress_factory(sum(len(chunks) for _, chunks in split)) if progress_factory else None
        for doc, chunks in split:
            vectors = await _embed(embedder, job.identity, chunks, progress)
            await asyncio.to_thread(job.put, doc, chunks, vectors)
        await asyncio.to_thread(job.commit)
        return job.finish(written=True)
    finally:
        await asyncio.to_thread(job.cleanup)


async def _embed(embedder: Embedder, identity: str, chunks: list[str], progress: Progress | None) -> np.ndarray:
    parts = []
    for i in range(0, len(chunks), EMBED_BATCH):
        batch = chunks[i : i + EMBED_BATCH]
        vectors, made_by = await embedder.embed_with_identity(batch, kind="passage")
        if made_by != identity:
            raise IngestError(f"embedding switched from {identity} to {made_by} mid-ingest; nothing was changed")
        parts.append(vectors)
        if progress:
            progress(len(batch))
    return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)


class _Job:
    """The blocking steps of one ingest, in order: prepare, put (per document), commit, cleanup."""

    def __init__(self, source: Path, target: IngestTarget, identity: str, dimension: int, rebuild: bool) -> None:
        self.source, self.target = source, target
        self.identity, self.dimension, self.rebuild = identity, dimension, rebuild
        self.summary = IngestSummary()
        self.started = time.perf_counter()
        self.tmp_store = index.temp_path(target.store_path)
        self.tmp_index: Path | None = None
        self.store: ChunkStore | None = None
        self._lock: contextlib.ExitStack = contextlib.ExitStack()

    def prepare(self) -> list[documents.Document] | None:
        """Lock, copy the store, compare the folder; None when nothing changed."""
        target = self.target
        if not self.source.is_dir():
            raise IngestError(f"source folder {self.source} does not exist")
        target.store_path.parent.mkdir(parents=True, exist_ok=True)
        target.index_path.parent.mkdir(parents=True, exist_ok=True)
        self._lock.enter_context(_exclusive(target.store_path))
        for stale in (*index.stale_temps(target.index_path), *index.stale_temps(target.store_path)):
            log.info("removing %s left by an interrupted ingest", stale)
            stale.unlink(missing_ok=True)
        if target.store_path.exists() and not self.rebuild:
            meta = _old_meta(target.store_path, self.identity)
            chunking = (str(target.chunk_size), str(target.chunk_overlap))
            if (meta.get("chunk_size"), meta.get("chunk_overlap")) not in (chunking, (None, None)):
                self.summary.notes.append("chunk_size/chunk_overlap changed since the last ingest: re-chunking every file")
                self.rebuild = True
            else:
                copy_store(target.store_path, self.tmp_store)
        self.store = ChunkStore(self.tmp_store, readonly=False)
        to_embed = _compare(self.source, self.store, self.summary)
        if not (self.summary.added or self.summary.changed or self.summary.removed or self.rebuild):
            meta = self.store.meta()
            if meta.get("index_type") == target.params.kind and index_matches_store(target.index_path, meta):
                self.summary.documents_total, self.summary.chunks_total = self.store.counts()
                return None
        return to_embed

    def put(self, doc: documents.Document, chunks: list[str], vectors: np.ndarray) -> None:
        assert self.store is not None
        self.store.remove_document(doc.source)
        self.store.put_document(doc.source, doc.sha256, doc.size, len(chunks), _now())
        if chunks:
            hashes = [documents.file_hash(c.encode()) for c in chunks]
            self.store.add_chunks(doc.source, chunks, hashes, vectors)
        self.summary.chunks_embedded += len(chunks)

    def commit(self) -> None:
        """Build and write the index, record it in the store, then rename both into place."""
        assert self.store is not None
        store, target = self.store, self.target
        ids, vectors = store.vectors(self.dimension)
        built = index.build(ids, vectors, self.dimension, target.params)
        self.tmp_index = index.write_temp(built, target.index_path)
        size, digest = index.file_digest(self.tmp_index)
        self.summary.documents_total, self.summary.chunks_total = store.counts()
        store.set_meta({
            "schema_version": SCHEMA_VERSION,
            "embedding": self.identity,
            "dimension": str(self.dimension),
            "index_type": target.params.kind,
            "index_file": target.index_path.name,
            "index_size": str(size),
            "index_sha256": digest,
            "build_id": uuid.uuid4().hex,
            "built_at": _now(),
            "source": str(self.source.resolve()),
            "chunk_size": str(target.chunk_size),
            "chunk_overlap": str(target.chunk_overlap),
            "documents": str(self.summary.documents_total),
            "chunks": str(self.summary.chunks_total),
        })
        store.commit()
        store.close()
        index.fsync(self.tmp_store)
        # The commit: the index first, then the store that names it (see the module doc).
        os.replace(self.tmp_index, target.index_path)
        os.replace(self.tmp_store, target.store_path)
        index.fsync(target.index_path.parent)
        index.fsync(target.store_path.parent)

    def cleanup(self) -> None:
        if self.store is not None:
            self.store.close()
        self.tmp_store.unlink(missing_ok=True)
        if self.tmp_index is not None:
            self.tmp_index.unlink(missing_ok=True)
        self._lock.close()

    def finish(self, *, written: bool) -> IngestSummary:
        self.summary.written = written
        self.summary.seconds = time.perf_counter() - self.started
        return self.summary


class _PgJob:
    """The same steps against PostgreSQL, all inside the writer's one transaction."""

    def __init__(self, source: Path, target: PgTarget, identity: str, dimension: int, rebuild: bool) -> None:
        self.source, self.target = source, target
        self.identity, self.dimension, self.rebuild = identity, dimension, rebuild
        self.summary = IngestSummary()
        self.started = time.perf_counter()
        self.writer = PgWriter(target)

    def prepare(self) -> list[documents.Document] | None:
        """Connect and lock, check the model, compare the folder; None when nothing changed."""
        if not self.source.is_dir():
            raise IngestError(f"source folder {self.source} does not exist")
        with _refused():
            self.writer.open()
            meta = self.writer.meta()
        version = meta.get("schema_version")
        if version not in (None, PG_SCHEMA_VERSION):
            raise IngestError(f"{self.target.describe()} has schema version {version}; this monolith writes "
                              f"{PG_SCHEMA_VERSION}")
        built_with = meta.get("embedding")
        if built_with is not None and built_with != self.identity and not self.rebuild:
            raise IngestError(
                f"the index in {self.target.describe()} was built with {built_with}, but the configured embedding "
                f"model is {self.identity}; vectors from different models cannot be mixed: pass --rebuild "
                "to re-embed everything"
            )
        chunking = (str(self.target.chunk_size), str(self.target.chunk_overlap))
        if not self.rebuild and (meta.get("chunk_size"), meta.get("chunk_overlap")) not in (chunking, (None, None)):
            self.summary.notes.append("chunk_size/chunk_overlap changed since the last ingest: re-chunking every file")
            self.rebuild = True
        with _refused():
            self.writer.prepare_chunks(self.dimension, clear=self.rebuild)
            to_embed = _compare(self.source, self.writer, self.summary)
            if not (self.summary.added or self.summary.changed or self.summary.removed or self.rebuild):
                same_index = self.writer.index_params() == (self.target.hnsw_m, self.target.hnsw_ef_construction)
                if built_with is not None and same_index:
                    self.summary.documents_total, self.summary.chunks_total = self.writer.counts()
                    return None
        return to_embed

    def put(self, doc: documents.Document, chunks: list[str], vectors: np.ndarray) -> None:
        with _refused():
            self.writer.remove_document(doc.source)
            self.writer.put_document(doc.source, doc.sha256, doc.size, len(chunks), _now())
            if chunks:
                hashes = [documents.file_hash(c.encode()) for c in chunks]
                self.writer.add_chunks(doc.source, chunks, hashes, vectors)
        self.summary.chunks_embedded += len(chunks)

    def commit(self) -> None:
        """Index, counts and meta, then the one commit that publishes the whole run."""
        with _refused():
            if self.writer.ensure_index(self.target.hnsw_m, self.target.hnsw_ef_construction):
                self.summary.notes.append("hnsw_m/hnsw_ef_construction changed since the last ingest: rebuilt the HNSW index")
            self.summary.documents_total, self.summary.chunks_total = self.writer.counts()
            self.writer.set_meta({
                "schema_version": PG_SCHEMA_VERSION,
                "embedding": self.identity,
                "dimension": str(self.dimension),
                "index_type": "hnsw",
                "hnsw_m": str(self.target.hnsw_m),
                "hnsw_ef_construction": str(self.target.hnsw_ef_construction),
                "build_id": uuid.uuid4().hex,
                "built_at": _now(),
                "source": str(self.source.resolve()),
                "chunk_size": str(self.target.chunk_size),
                "chunk_overlap": str(self.target.chunk_overlap),
                "documents": str(self.summary.documents_total),
                "chunks": str(self.summary.chunks_total),
            })
            self.writer.commit()

    def cleanup(self) -> None:
        self.writer.close()  # rolls back anything not committed

    def finish(self, *, written: bool) -> IngestSummary:
        self.summary.written = written
        self.summary.seconds = time.perf_counter() - self.started
        return self.summary


@contextlib.contextmanager
def _refused() -> Iterator[None]:
    """A database error ends the ingest; the transaction rolls back, so nothing was changed."""
    try:
        yield
    except PgUnavailable as exc:
        raise IngestError(f"{exc}; nothing was changed") from None


class _Documents(Protocol):
    """What the folder comparison needs from a store: the SQLite store and PgWriter both fit."""

    def document_hashes(self) -> dict[str, str]: ...

    def remove_document(self, path: str) -> int: ...


@contextlib.contextmanager
def _exclusive(store_path: Path) -> Iterator[None]:
    """One ingest per store at a time: a second one would clean up the first one's files."""
    lock_path = store_path.with_name(f".{store_path.name}.lock")
    with lock_path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IngestError(f"another ingest is writing {store_path}; wait for it to finish") from exc
        yield


def _old_meta(store_path: Path, identity: str) -> dict[str, str]:
    """The current store's meta, refusing a store built with another embedding model."""
    try:
        old = ChunkStore(store_path, readonly=True)
    except StoreError as exc:
        raise IngestError(f"{exc}; pass --rebuild to start a new store") from exc
    try:
        meta = old.meta()
    finally:
        old.close()
    built_with = meta.get("embedding")
    if built_with is not None and built_with != identity:
        raise IngestError(
            f"the index at {store_path} was built with {built_with}, but the configured embedding "
            f"model is {identity}; vectors from different models cannot be mixed: pass --rebuild "
            "to re-embed everything"
        )
    return meta


def _compare(source: Path, store: _Documents, summary: IngestSummary) -> list[documents.Document]:
    """Sort the folder's files into the summary; return the documents to (re-)embed."""
    to_embed: list[documents.Document] = []
    known = store.document_hashes()
    seen: set[str] = set()
    for file in documents.walk(source):
        seen.add(file.relative)
        data = file.path.read_bytes()
        if known.get(file.relative) == documents.file_hash(data):
            summary.unchanged.append(file.relative)
            continue
        try:
            doc = documents.read(file, data)
        except documents.UnreadableDocument as exc:
            # Reported, not fatal; a previously good version of the file keeps serving.
            summary.failed.append((file.relative, str(exc)))
            continue
        (summary.changed if file.relative in known else summary.added).append(file.relative)
        to_embed.append(doc)
    for path in sorted(set(known) - seen):
        store.remove_document(path)
        summary.removed.append(path)
    return to_embed
