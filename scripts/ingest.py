"""Build or update the RAG index from a folder of documents (incremental; safe to interrupt).

    python scripts/ingest.py --source docs --index data/faiss/index.bin [--config config.toml] [--rebuild]

Markdown, plain text, HTML and PDF (with pypdf) are split along sentence boundaries, embedded
with the configured embedding model, and written to the index and the chunk store beside it.
Unchanged files are skipped, changed ones replaced, deleted ones removed. A running server picks
up the result with `POST /v1/rag/reload` (or by itself with `[rag] watch = true`).

With `[rag] backend = "pgvector"` the chunks go to PostgreSQL (`[rag] dsn` or MONOLITH_RAG__DSN)
in one transaction; servers reading that database see the result as soon as it commits.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monolith.config import ConfigError, Settings, load_settings  # noqa: E402
from monolith.providers.base import Provider  # noqa: E402
from monolith.providers.embedding import EmbeddingProvider  # noqa: E402
from monolith.rag.ingest import IngestError, IngestTarget, ingest  # noqa: E402
from monolith.rag.postgres import PgTarget  # noqa: E402
from monolith.rag.service import index_params  # noqa: E402
from monolith.registry import factories  # noqa: E402
from monolith.scheduler.placement import PlacementError, build_plan, detect_inventory  # noqa: E402

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True, help="folder of documents to index")
    parser.add_argument("--index", type=Path, help="FAISS index file (default: [rag] index_path / RAG_INDEX_PATH)")
    parser.add_argument("--store", type=Path, help="chunk store (default: [rag] store_path)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="config.toml (default: the repo's)")
    parser.add_argument("--rebuild", action="store_true", help="re-embed everything (needed after changing the model)")
    parser.add_argument("--cpu-mock", action="store_true", help="embed with the mock model (matches a --cpu-mock server)")
    parser.add_argument("--device", help="cpu or cuda:N for the embedding model (default: its placement in config)")
    parser.add_argument("--providers", help="accepted for the old `app.cli.ingest` command line; unused")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def embedding_devices(settings: Settings, device: str | None) -> tuple[int, ...]:
    if device is not None:
        if device == "cpu":
            return ()
        if device.startswith("cuda:") and device[5:].isdigit():
            return (int(device[5:]),)
        raise SystemExit(f"--device must be cpu or cuda:N, not {device!r}")
    try:
        plan = build_plan(settings, detect_inventory(use_torch=True))
    except PlacementError:
        return ()  # the configured GPU is not here (a CPU machine): embed on CPU
    return plan.assignments["embedding"].devices


def build_embedder(settings: Settings, device: str | None) -> Provider:
    if settings.cpu_mock or settings.embedding.provider == "mock":
        return factories.build_mock(settings, "embedding")
    from monolith.providers.base import ThreadRunner

    backend = settings.embedding.provider
    return factories.build_real(settings, "embedding", backend, ThreadRunner(), embedding_devices(settings, device))


def progress_bar(quiet: bool) -> Callable[[int], Callable[[int], None]] | None:
    if quiet:
        return None
    from tqdm import tqdm

    def factory(total: int) -> Callable[[int], None]:
        bar = tqdm(total=total, unit="chunk", desc="embedding", file=sys.stderr)
        return lambda n: bar.update(n)

    return factory


async def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, dict(os.environ), cpu_mock=args.cpu_mock)
    target: IngestTarget | PgTarget
    if settings.rag.backend == "pgvector":
        if args.index or args.store:
            print("ingest: --index/--store name FAISS files; [rag] backend is pgvector, so they are ignored",
                  file=sys.stderr)
        target = PgTarget.from_config(settings.rag)
    else:
        target = IngestTarget(
            index_path=args.index.resolve() if args.index else settings.resolve(settings.rag.index_path),
            store_path=args.store.resolve() if args.store else settings.resolve(settings.rag.store_path),
            params=index_params(settings.rag),
            chunk_size=settings.rag.chunk_size,
            chunk_overlap=settings.rag.chunk_overlap,
        )
    embedder = build_embedder(settings, args.device)
    assert isinstance(embedder, EmbeddingProvider)
    await embedder.load()
    try:
        print(f"embedding with {embedder.identity}", file=sys.stderr)
        summary = await ingest(args.source, target, embedder, rebuild=args.rebuild, progress_factory=progress_bar(args.quiet))
    finally:
        await embedder.close()
    for line in summary.lines():
        print(line)
    if isinstance(target, PgTarget):
        print(f"database: {target.describe()}")
    else:
        print(f"index: {target.index_path}")
        print(f"store: {target.store_path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        return asyncio.run(run(args))
    except (ConfigError, IngestError) as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
