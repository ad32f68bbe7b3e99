"""The chunk store: one SQLite file with every chunk's text, source, position, hash and vector.

The store is the source of truth and the commit point of an ingest. The FAISS index beside it
is derived from the vectors kept here, and the store's `meta` table records which index file
belongs to it (size and SHA-256), which embedding model made the vectors, and when."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
    path TEXT PRIMARY KEY,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    chunks INTEGER NOT NULL,
    ingested_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL REFERENCES documents(path) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    text TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_by_path ON chunks(path);
"""


class StoreError(Exception):
    pass


@dataclass(frozen=True)
class StoredChunk:
    id: int
    source: str
    position: int
    text: str


class ChunkStore:
    """A connection to one store file. Read-only stores may be shared by search threads."""

    def __init__(self, path: Path, *, readonly: bool) -> None:
        self.path = path
        self.readonly = readonly
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
            else:
                self.db = sqlite3.connect(path, check_same_thread=False)
                self.db.executescript(_SCHEMA)
            self.db.execute("PRAGMA foreign_keys = ON")
            version = self.meta().get("schema_version")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path} is not a chunk store: {exc}") from exc
        if version not in (None, SCHEMA_VERSION):
            raise StoreError(f"{path} has store schema {version}; this monolith reads {SCHEMA_VERSION}")
        self._lock = threading.Lock()  # one statement at a time on the shared connection

    def close(self) -> None:
        self.db.close()

    # --- meta ------------------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        try:
            return dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.OperationalError as exc:
            raise StoreError(f"{self.path} is not a chunk store: {exc}") from exc

    def set_meta(self, values: dict[str, str]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", list(values.items()))

    # --- documents -------------------------------------------------------------------------

    def document_hashes(self) -> dict[str, str]:
        return dict(self.db.execute("SELECT path, sha256 FROM documents").fetchall())

    def remove_document(self, path: str) -> int:
        removed = self.db.execute("DELETE FROM chunks WHERE path = ?", (path,)).rowcount
        self.db.execute("DELETE FROM documents WHERE path = ?", (path,))
        return removed

    def put_document(self, path: str, sha256: str, size: int, chunks: int, ingested_at: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO documents (path, sha256, size, chunks, ingested_at) VALUES (?, ?, ?, ?, ?)",
            (path, sha256, size, chunks, ingested_at),
        )

    def add_chunks(self, path: str, texts: Sequence[str], hashes: Sequence[str], vectors: np.ndarray) -> None:
        rows = (
            (path, position, text, digest, np.ascontiguousarray(vec, dtype="<f4").tobytes())
            for position, (text, digest, vec) in enumerate(zip(texts, hashes, vectors, strict=True))
        )
        self.db.executemany(
            "INSERT INTO chunks (path, position, text, sha256, vector) VALUES (?, ?, ?, ?, ?)", rows
        )

    def commit(self) -> None:
        self.db.commit()

    # --- reading ---------------------------------------------------------------------------

    def counts(self) -> tuple[int, int]:
        """(documents, chunks)"""
        docs = self.db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
        chunks = self.db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    def vectors(self, dimension: int) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, vectors float32 (n, dimension)), for building the index."""
        rows = self.db.execute("SELECT id, vector FROM chunks ORDER BY id").fetchall()
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.empty((len(rows), dimension), dtype=np.float32)
        for i, (_, blob) in enumerate(rows):
            vec = np.frombuffer(blob, dtype="<f4")
            if vec.shape[0] != dimension:
                raise StoreError(f"chunk {rows[i][0]} has {vec.shape[0]} dims, expected {dimension}")
            vectors[i] = vec
        return ids, vectors

    def chunks(self, ids: Iterable[int]) -> dict[int, StoredChunk]:
        wanted = [int(i) for i in ids]
        if not wanted:
            return {}
        marks = ",".join("?" * len(wanted))
        with self._lock:
            rows = self.db.execute(
                f"SELECT id, path, position, text FROM chunks WHERE id IN ({marks})", wanted
            ).fetchall()
        return {r[0]: StoredChunk(r[0], r[1], r[2], r[3]) for r in rows}


def copy_store(source: Path, target: Path) -> None:
    """A consistent copy through SQLite's backup API (safe while the server reads `source`)."""
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)
    finally:
        src.close()
        dst.close()
