"""The pgvector backend's database side: chunks, vectors and an HNSW index in PostgreSQL.

Tables, in `[rag] pg_schema` (default `monolith_rag`) of the database `[rag] dsn` names:
`meta` (key/value: embedding model, dimension, build id, counts), `documents` (path, SHA-256)
and `chunks` (path, position, text, SHA-256, `embedding vector(d)`), with an HNSW index on the
embeddings by inner product: vectors are L2-normalized, so the score is the cosine, the same
number FAISS's `IndexFlatIP` gives, and `[rag] min_score` means the same on both backends.

`PgWriter` is the ingest's side: one connection, one transaction from the first read to the
commit, so a killed ingest leaves the previous content whole. `PgReader` is the server's side:
a few async connections, each search one read-only snapshot (meta and rows together).

psycopg and pgvector are imported lazily: the light install serves the faiss backend without
them. Every message that names the database goes through `redact_dsn` (and `scrub`): passwords
never reach a log, /ready or an error."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote

import numpy as np

from monolith.config import RAGConfig

SCHEMA_VERSION = "1"
T = TypeVar("T")
CONNECT_TIMEOUT_S = 5
LOCK_TIMEOUT_S = 10  # a second ingest waits this long for the first one's lock
POOL_SIZE = 8  # a search holds a connection for a millisecond or two
INSTALL_HINT = (
    "backend pgvector needs psycopg and pgvector: pip install 'psycopg[binary]' pgvector "
    "(or the monolith[pgvector] extra)"
)


class PgUnavailable(Exception):
    """The database cannot be reached or used; the message is already free of passwords."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing  # reachable, but no ingest has written this schema yet


class PgBusy(PgUnavailable):
    """Another ingest holds this schema's lock."""


# --- passwords out of every message ---------------------------------------------------------

_URI_USERINFO = re.compile(r"^(\s*postgres(?:ql)?://[^:/?#@]*:)([^@]*)(@)", re.I)
_URI_PARAM = re.compile(r"([?&](?:ssl)?password=)([^&#]*)", re.I)
_KV_PASSWORD = re.compile(r"(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']\S*)", re.I)
MASK = "***"


def _is_uri(dsn: str) -> bool:
    return dsn.strip().lower().startswith(("postgresql://", "postgres://"))


def redact_dsn(dsn: str) -> str:
    """The connection string with any password replaced by ***, in URI or key=value form."""
    if _is_uri(dsn):
        out = _URI_USERINFO.sub(lambda m: f"{m[1]}{MASK}{m[3]}", dsn)
        return _URI_PARAM.sub(lambda m: f"{m[1]}{MASK}", out)
    return _KV_PASSWORD.sub(lambda m: f"{m[1]}{MASK}", dsn)


def _passwords(dsn: str) -> set[str]:
    found: set[str] = set()
    if _is_uri(dsn):
        raw = [m[2] for m in (_URI_USERINFO.match(dsn),) if m] + [m[2] for m in _URI_PARAM.finditer(dsn)]
        found.update(raw)
        found.update(unquote(p) for p in raw)
    else:
        for m in _KV_PASSWORD.finditer(dsn):
            value = m[2]
            found.add(value)
            if value.startswith("'") and value.endswith("'") and len(value) >= 2:
                found.add(re.sub(r"\\(.)", r"\1", value[1:-1]))
    return {p for p in found if p}


def scrub(text: str, dsn: str) -> str:
    """`text` (an error message, say) with the DSN's password wherever it appears masked."""
    for secret in sorted(_passwords(dsn), key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


# --- drivers --------------------------------------------------------------------------------


def _drivers() -> tuple[Any, Any]:
    """(psycopg, pgvector.psycopg), imported on first use."""
    try:
        import pgvector.psycopg as pgvector_psycopg
        import psycopg
    except ImportError:
        raise PgUnavailable(INSTALL_HINT) from None
    return psycopg, pgvector_psycopg


@contextlib.contextmanager
def _translated(dsn: str, what: str) -> Iterator[None]:
    """psycopg's errors as PgUnavailable naming the (redacted) database; no chained original."""
    psycopg, _ = _drivers()
    try:
        yield
    except PgUnavailable:
        raise
    except psycopg.Error as exc:
        message = scrub(str(exc).strip(), dsn)
        missing = isinstance(exc, (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName))
        raise PgUnavailable(f"{what} at {redact_dsn(dsn)}: {message}", missing=missing) from None


@dataclass(frozen=True)
class PgTarget:
    """Where a pgvector ingest writes, and how it chunks and indexes."""

    dsn: str
    schema: str
    hnsw_m: int
    hnsw_ef_construction: int
    chunk_size: int
    chunk_overlap: int

    @classmethod
    def from_config(cls, config: RAGConfig) -> PgTarget:
        return cls(config.dsn, config.pg_schema, config.hnsw_m, config.hnsw_ef_construction,
                   config.chunk_size, config.chunk_overlap)

    def describe(self) -> str:
        return f"{redact_dsn(self.dsn)} (schema {self.schema})"


def _sql(template: str, schema: str, **literals: object) -> Any:
    """A statement with `{s}` as the quoted schema and other `{names}` as SQL literals."""
    psycopg, _ = _drivers()
    sql = psycopg.sql
    return sql.SQL(template).format(s=sql.Identifier(schema), **{k: sql.Literal(v) for k, v in literals.items()})


# --- the ingest's side ----------------------------------------------------------------------


class PgWriter:
    """One ingest's connection. Everything it does is one transaction: `commit()` publishes it
    all, and anything else (an error, close(), a killed process) leaves the database as it was."""

    def __init__(self, target: PgTarget) -> None:
        self.target = target
        self.schema = target.schema
        self.conn: Any = None
        self.committed = False

    def open(self) -> None:
        """Connect, take the schema's ingest lock, create what is missing (all inside the transaction)."""
        psycopg, pgvector_psycopg = _drivers()
        dsn = self.target.dsn
        with _translated(dsn, "cannot connect to PostgreSQL"):
            self.conn = psycopg.connect(dsn, connect_timeout=CONNECT_TIMEOUT_S, application_name="monolith-ingest")
        with _translated(dsn, "PostgreSQL"):
            self.conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT_S}s'")
            try:
                self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"monolith-rag:{self.schema}",))
            except psycopg.errors.LockNotAvailable:
                raise PgBusy(f"another ingest is writing schema {self.schema} at {redact_dsn(dsn)}; "
                             "wait for it to finish") from None
            try:
                self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
            except psycopg.errors.InsufficientPrivilege:
                raise PgUnavailable(
                    f"the pgvector extension is not installed in {redact_dsn(dsn)} and this user may not create "
                    "it: have a superuser run `CREATE EXTENSION vector` in that database") from None
            pgvector_psycopg.register_vector(self.conn)
            self.conn.execute(_sql(
                "CREATE SCHEMA IF NOT EXISTS {s};"
                "CREATE TABLE IF NOT EXISTS {s}.meta (key text PRIMARY KEY, value text NOT NULL);"
                "CREATE TABLE IF NOT EXISTS {s}.documents (path text PRIMARY KEY, sha256 text NOT NULL,"
                " size bigint NOT NULL, chunks integer NOT NULL, ingested_at timestamptz NOT NULL)",
                self.schema,
            ))

    @contextlib.contextmanager
    def _db(self) -> Iterator[Any]:
        assert self.conn is not None, "PgWriter.open() first"
        with _translated(self.target.dsn, "PostgreSQL"):
            yield self.conn

    def meta(self) -> dict[str, str]:
        with self._db() as conn:
            return dict(conn.execute(_sql("SELECT key, value FROM {s}.meta", self.schema)).fetchall())

    def prepare_chunks(self, dimension: int, *, clear: bool) -> None:
        """The chunks table for vectors of `dimension`; emptied when `clear` (a rebuild).

        Emptying is row by row, not TRUNCATE: searches keep reading the old rows until the commit.
        A new dimension (another model) replaces the table, which holds searches until the commit."""
        with self._db() as conn:
            table = f"{self.schema}.chunks"
            row = conn.execute(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attname = 'embedding'",
                (table,),
            ).fetchone()
            if row is not None and row[0] != dimension:
                conn.execute(_sql("DROP TABLE {s}.chunks", self.schema))
                row = None
            if row is None:
                conn.execute(_sql(
                    "CREATE TABLE {s}.chunks (id bigserial PRIMARY KEY,"
                    " path text NOT NULL REFERENCES {s}.documents (path) ON DELETE CASCADE,"
                    " position integer NOT NULL, text text NOT NULL, sha256 text NOT NULL,"
                    f" embedding vector({int(dimension)}) NOT NULL);"
                    "CREATE INDEX chunks_by_path ON {s}.chunks (path)",
                    self.schema,
                ))
            if clear:
                conn.execute(_sql("DELETE FROM {s}.chunks; DELETE FROM {s}.documents", self.schema))

    def document_hashes(self) -> dict[str, str]:
        with self._db() as conn:
            return dict(conn.execute(_sql("SELECT path, sha256 FROM {s}.documents", self.schema)).fetchall())

    def remove_document(self, path: str) -> int:
        with self._db() as conn:
            removed = conn.execute(_sql("DELETE FROM {s}.chunks WHERE path = %s", self.schema), (path,)).rowcount
            conn.execute(_sql("DELETE FROM {s}.documents WHERE path = %s", self.schema), (path,))
            return int(removed)

    def put_document(self, path: str, sha256: str, size: int, chunks: int, ingested_at: str) -> None:
        with self._db() as conn:
            conn.execute(_sql(
                "INSERT INTO {s}.documents (path, sha256, size, chunks, ingested_at) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (path) DO UPDATE SET sha256 = EXCLUDED.sha256, size = EXCLUDED.size,"
                " chunks = EXCLUDED.chunks, ingested_at = EXCLUDED.ingested_at",
                self.schema,
            ), (path, sha256, size, chunks, ingested_at))

    def add_chunks(self, path: str, texts: Sequence[str], hashes: Sequence[str], vectors: np.ndarray) -> None:
        rows = [
            (path, position, text, digest, np.ascontiguousarray(vec, dtype=np.float32))
            for position, (text, digest, vec) in enumerate(zip(texts, hashes, vectors, strict=True))
        ]
        with self._db() as conn, conn.cursor() as cur:
            cur.executemany(_sql(
                "INSERT INTO {s}.chunks (path, position, text, sha256, embedding) VALUES (%s, %s, %s, %s, %s)",
                self.schema,
            ), rows)

    def index_params(self) -> tuple[int, int] | None:
        """(m, ef_construction) of the HNSW index, None when there is none."""
        with self._db() as conn:
            row = conn.execute("SELECT reloptions FROM pg_class WHERE oid = to_regclass(%s)",
                               (f"{self.schema}.chunks_hnsw",)).fetchone()
        if row is None:
            return None
        options = dict(opt.split("=", 1) for opt in (row[0] or []))
        return int(options.get("m", 16)), int(options.get("ef_construction", 64))

    def ensure_index(self, m: int, ef_construction: int) -> bool:
        """The HNSW index with these parameters (built after a fresh table's rows are in: faster);
        True when one with other parameters was replaced."""
        current = self.index_params()
        if current == (m, ef_construction):
            return False
        with self._db() as conn:
            if current is not None:
                conn.execute(_sql("DROP INDEX {s}.chunks_hnsw", self.schema))
            conn.execute(_sql(
                "CREATE INDEX chunks_hnsw ON {s}.chunks USING hnsw (embedding vector_ip_ops)"
                " WITH (m = {m}, ef_construction = {ef})",
                self.schema, m=m, ef=ef_construction,
            ))
        return current is not None

    def counts(self) -> tuple[int, int]:
        """(documents, chunks), as this transaction sees them."""
        with self._db() as conn:
            docs = conn.execute(_sql("SELECT count(*) FROM {s}.documents", self.schema)).fetchone()[0]
            chunks = conn.execute(_sql("SELECT count(*) FROM {s}.chunks", self.schema)).fetchone()[0]
        return int(docs), int(chunks)

    def set_meta(self, values: dict[str, str]) -> None:
        with self._db() as conn, conn.cursor() as cur:
            cur.executemany(_sql(
                "INSERT INTO {s}.meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                self.schema,
            ), list(values.items()))

    def commit(self) -> None:
        with self._db() as conn:
            conn.commit()
        self.committed = True

    def close(self) -> None:
        """Roll back whatever was not committed, and disconnect."""
        if self.conn is not None:
            with contextlib.suppress(Exception):
                self.conn.close()  # an open transaction is rolled back by the server
            self.conn = None


# --- the server's side ----------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    id: int
    source: str
    position: int
    text: str
    score: float


class PgReader:
    """Searches and status reads on a small pool of async connections (psycopg's async API: the
    event loop never waits on the database)."""

    def __init__(self, dsn: str, schema: str, ef_search: int, *, size: int = POOL_SIZE) -> None:
        self.dsn, self.schema, self.ef_search = dsn, schema, ef_search
        self._idle: list[Any] = []
        self._slots = asyncio.Semaphore(size)

    async def _connect(self) -> Any:
        psycopg, pgvector_psycopg = _drivers()
        with _translated(self.dsn, "cannot connect to PostgreSQL"):
            conn = await psycopg.AsyncConnection.connect(
                self.dsn, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S, application_name="monolith"
            )
            try:
                await conn.set_isolation_level(psycopg.IsolationLevel.REPEATABLE_READ)
                await conn.set_read_only(True)
                try:
                    await pgvector_psycopg.register_vector_async(conn)
                except psycopg.ProgrammingError:
                    # No vector type in this database: no ingest has run here yet. Vectors are
                    # only sent once one has, and a later connection registers them then.
                    pass
            except BaseException:
                await conn.close()
                raise
        return conn

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[tuple[Any, bool]]:
        """(a pooled connection, whether it was used before). One that broke, or whose use was
        cancelled mid-statement, is closed rather than reused."""
        psycopg, _ = _drivers()
        async with self._slots:
            reused = bool(self._idle)
            conn = self._idle.pop() if reused else await self._connect()
            try:
                yield conn, reused
            except BaseException as exc:
                if isinstance(exc, psycopg.Error) and _reusable(conn):
                    self._idle.append(conn)  # a statement failed (no table yet, say); the connection is fine
                else:
                    await _close_quietly(conn)
                raise
            if _reusable(conn):
                self._idle.append(conn)
            else:
                await _close_quietly(conn)

    async def _run(self, work: Callable[[Any], Awaitable[T]], what: str) -> T:
        """`await work(conn)` on a pooled connection; retried once on a fresh one when a pooled one
        turns out broken (an idle connection outlived a database restart)."""
        psycopg, _ = _drivers()
        with _translated(self.dsn, what):
            for _ in range(POOL_SIZE + 1):  # every idle connection may be stale after a restart
                try:
                    async with self._connection() as (conn, reused):
                        try:
                            return await work(conn)
                        except psycopg.OperationalError:
                            if reused and conn.broken:
                                raise _Stale from None
                            raise
                except _Stale:
                    continue
        raise PgUnavailable(f"{what} at {redact_dsn(self.dsn)}: every pooled connection was broken")

    async def meta(self) -> dict[str, str]:
        """The `meta` table; PgUnavailable(missing=True) when no ingest has written this schema."""

        async def read(conn: Any) -> dict[str, str]:
            cur = await conn.execute(_sql("SELECT key, value FROM {s}.meta", self.schema))
            return dict(await cur.fetchall())

        return await self._run(read, "PostgreSQL")

    async def search(self, query: np.ndarray, k: int, identity: str) -> tuple[dict[str, str], list[Hit]]:
        """(meta, the k best chunks by score) from one snapshot; no chunks when the meta's embedding
        is not `identity` (vectors of another model cannot be compared)."""
        vector = np.ascontiguousarray(query, dtype=np.float32)

        async def lookup(conn: Any) -> tuple[dict[str, str], list[Hit]]:
            async with conn.transaction():
                cur = await conn.execute(_sql("SELECT key, value FROM {s}.meta", self.schema))
                meta = dict(await cur.fetchall())
                if meta.get("embedding") != identity:
                    return meta, []
                if not _has_vector_type(conn):
                    await _drivers()[1].register_vector_async(conn)
                # ef_search below k would return fewer than k rows.
                await conn.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(max(self.ef_search, k)),))
                cur = await conn.execute(_sql(
                    "SELECT id, path, position, text, -(embedding <#> %(q)s) AS score FROM {s}.chunks"
                    " ORDER BY embedding <#> %(q)s LIMIT %(k)s",
                    self.schema,
                ), {"q": vector, "k": k})
                rows = await cur.fetchall()
            return meta, [Hit(int(r[0]), r[1], int(r[2]), r[3], float(r[4])) for r in rows]

        return await self._run(lookup, "PostgreSQL")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close_quietly(conn)


class _Stale(Exception):
    pass


def _reusable(conn: Any) -> bool:
    psycopg, _ = _drivers()
    return not conn.closed and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def _has_vector_type(conn: Any) -> bool:
    return conn.adapters.types.get("vector") is not None


async def _close_quietly(conn: Any) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
