"""RAG benchmark: ingest throughput, search latency (flat vs HNSW at 10k and 100k chunks), and
embedding throughput with micro-batching vs one forward pass per request (16 concurrent callers).

    python scripts/bench_rag.py [--sizes 10000 100000] [--ingest-chunks 2000] [--callers 16] [--out FILE]

Everything runs in one process, side by side, through monolith's own code:
- ingest: `monolith.rag.ingest` with the real MiniLM (the model tiny configs use; a GPU e5 is
  far faster) and, for the pipeline alone, with a vector generator that costs nothing;
- search: `RagService.search` (query vector -> FAISS -> SQLite texts) over stores of each size
  built by the same ingest, p50/p95 over many queries; the query is embedded by the
  zero-cost generator so the figure is the index and store, and MiniLM's own query time is
  printed beside it;
- embedding: N concurrent callers each sending single-text requests to the sentence-transformers
  provider, with micro-batching (batch_size 32, 5 ms window) and without (batch_size 1).
A benchmark, not a test: it prints figures and judges nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from monolith.config import EmbeddingConfig, RAGConfig  # noqa: E402
from monolith.providers.base import EngineSpec, ThreadRunner  # noqa: E402
from monolith.providers.st_embedding import STEmbedding  # noqa: E402
from monolith.rag.index import IndexParams  # noqa: E402
from monolith.rag.ingest import IngestTarget, ingest  # noqa: E402
from monolith.rag.service import RagService  # noqa: E402

WORDS = ("battery shipping refund warranty headphones cable charger order invoice account password "
         "delivery store return exchange price discount size colour model screen speaker").split()
JA = "東京 大阪 配送 返品 保証 充電 電池 注文 料金 割引 店舗 画面 音量 設定 修理".split()


class GeneratedEmbedder:
    """Deterministic unit vectors from a text hash: costs ~nothing, so the pipeline is what is timed."""

    identity = "bench-generated (hash, 384 dims)"
    dimension = 384

    async def embed_with_identity(self, texts: Sequence[str], *, kind: str) -> tuple[np.ndarray, str]:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
            vec = np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)
            rows.append(vec / np.linalg.norm(vec))
        return np.stack(rows), self.identity


def write_corpus(folder: Path, chunks: int, chunk_chars: int = 300, per_file: int = 100) -> None:
    """Files of sentences sized so the splitter makes about `chunks` chunks (no overlap)."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    made = 0
    n = 0
    while made < chunks:
        count = min(per_file, chunks - made)
        paragraphs = []
        for _ in range(count):
            sentences = []
            length = 0
            while length < chunk_chars - 60:
                if rng.random() < 0.3:
                    s = "".join(rng.choice(JA, 6)) + "について説明します。"
                else:
                    s = " ".join(rng.choice(WORDS, 8)).capitalize() + "."
                sentences.append(s)
                length += len(s) + 1
            paragraphs.append(" ".join(sentences))
        (folder / f"doc{n:05d}.md").write_text("\n\n".join(paragraphs), encoding="utf-8")
        made += count
        n += 1


def target(root: Path, kind: str) -> IngestTarget:
    return IngestTarget(root / f"{kind}.bin", root / f"{kind}.sqlite3", IndexParams(kind), chunk_size=320, chunk_overlap=0)  # type: ignore[arg-type]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


async def bench_ingest(root: Path, minilm: STEmbedding, chunks: int) -> dict[str, Any]:
    docs = root / "ingest-docs"
    write_corpus(docs, chunks)
    out: dict[str, Any] = {}
    for name, embedder in (("minilm", minilm), ("pipeline_only", GeneratedEmbedder())):
        t = target(root / f"ingest-{name}", "flat")
        summary = await ingest(docs, t, embedder)  # type: ignore[arg-type]
        out[name] = {"chunks": summary.chunks_total, "seconds": round(summary.seconds, 2),
                     "chunks_per_s": round(summary.chunks_total / summary.seconds, 1)}
    return out


async def bench_search(root: Path, sizes: list[int], queries: int, minilm: STEmbedding) -> dict[str, Any]:
    gen = GeneratedEmbedder()
    rows: dict[str, Any] = {}
    for size in sizes:
        docs = root / f"docs-{size}"
        write_corpus(docs, size)
        for kind in ("flat", "hnsw"):
            t = target(root / f"search-{size}", kind)
            summary = await ingest(docs, t, gen)  # type: ignore[arg-type]
            config = RAGConfig(index_type=kind, top_k=3)
            rag = RagService(config, index_path=t.index_path, store_path=t.store_path, embedder=gen)  # type: ignore[arg-type]
            await rag.start()
            texts = [" ".join(np.random.default_rng(i).choice(WORDS, 6)) for i in range(queries)]
            await rag.search(texts[0])
            latencies = []
            for text in texts:
                start = time.perf_counter()
                await rag.search(text)
                latencies.append((time.perf_counter() - start) * 1000)
            await rag.close()
            rows[f"{size}/{kind}"] = {
                "chunks": summary.chunks_total, "build_s": round(summary.seconds, 2),
                "p50_ms": round(pct(latencies, 50), 3), "p95_ms": round(pct(latencies, 95), 3),
            }
    query_ms = []
    for i in range(20):
        start = time.perf_counter()
        await minilm.embed([f"how long does the battery last {i}"], kind="query")
        query_ms.append((time.perf_counter() - start) * 1000)
    rows["minilm_query_embed"] = {"p50_ms": round(pct(query_ms, 50), 3), "p95_ms": round(pct(query_ms, 95), 3)}
    return rows


async def bench_embedding(model_path: str, callers: int, requests: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, batch_size, wait_ms in (("micro_batched", 32, 5.0), ("one_per_request", 1, 0.0)):
        config = EmbeddingConfig(batch_size=batch_size, max_batch_wait_ms=wait_ms, query_prefix="", passage_prefix="")
        st = STEmbedding(config, EngineSpec(model_path=model_path, model_id="minilm", runner=ThreadRunner()))
        await st.load()
        await st.embed(["warm"], kind="query")

        async def caller(c: int, st: STEmbedding = st) -> list[float]:
            times = []
            for r in range(requests):
                start = time.perf_counter()
                await st.embed([f"caller {c} asks question {r} about {WORDS[r % len(WORDS)]}"], kind="query")
                times.append((time.perf_counter() - start) * 1000)
            return times

        start = time.perf_counter()
        per_caller = await asyncio.gather(*(caller(c) for c in range(callers)))
        seconds = time.perf_counter() - start
        latencies = [t for times in per_caller for t in times]
        out[name] = {
            "requests_per_s": round(callers * requests / seconds, 1),
            "p50_ms": round(statistics.median(latencies), 2), "p95_ms": round(pct(latencies, 95), 2),
            "forward_passes": st.batcher.stats.batches - 1,
        }
        await st.close()
    out["throughput_ratio"] = round(out["micro_batched"]["requests_per_s"] / out["one_per_request"]["requests_per_s"], 2)
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    import make_tiny_weights

    with tempfile.TemporaryDirectory(prefix="bench-rag-") as tmp:
        root = Path(tmp)
        weights = root / "weights"
        make_tiny_weights.make(weights, only={"embedding"})
        model_path = str(next((weights / "embedding").iterdir()))
        minilm = STEmbedding(EmbeddingConfig(query_prefix="", passage_prefix=""),
                             EngineSpec(model_path=model_path, model_id="minilm", runner=ThreadRunner()))
        await minilm.load()
        results = {
            "ingest": await bench_ingest(root, minilm, args.ingest_chunks),
            "search": await bench_search(root, args.sizes, args.queries, minilm),
            "embedding": await bench_embedding(model_path, args.callers, args.requests),
        }
        await minilm.close()
    return results


def report(results: dict[str, Any]) -> None:
    ing = results["ingest"]
    print("ingest (chunks/s)")
    print(f"  MiniLM on CPU:         {ing['minilm']['chunks_per_s']:>9} ({ing['minilm']['chunks']} chunks in {ing['minilm']['seconds']} s)")
    print(f"  pipeline only:         {ing['pipeline_only']['chunks_per_s']:>9} (split, store, index; no model)")
    print("search latency through RagService (ms)")
    print(f"  {'size/index':<16}{'chunks':>8}{'build s':>9}{'p50':>9}{'p95':>9}")
    search = results["search"]
    for key, row in search.items():
        if key == "minilm_query_embed":
            continue
        print(f"  {key:<16}{row['chunks']:>8}{row['build_s']:>9}{row['p50_ms']:>9}{row['p95_ms']:>9}")
    q = search["minilm_query_embed"]
    print(f"  (MiniLM query embedding alone: p50 {q['p50_ms']} ms, p95 {q['p95_ms']} ms)")
    for size in sorted({k.split("/")[0] for k in search if "/" in k}, key=int):
        flat, hnsw = search.get(f"{size}/flat"), search.get(f"{size}/hnsw")
        if flat and hnsw:
            print(f"  {size} chunks: hnsw / flat p50 = {hnsw['p50_ms'] / flat['p50_ms']:.2f}")
    emb = results["embedding"]
    print("embedding, concurrent single-text callers")
    for name in ("micro_batched", "one_per_request"):
        row = emb[name]
        print(f"  {name:<16} {row['requests_per_s']:>8} req/s  p50 {row['p50_ms']} ms  p95 {row['p95_ms']} ms  "
              f"forward passes {row['forward_passes']}")
    print(f"  micro-batched / one per request (throughput ratio): {emb['throughput_ratio']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--ingest-chunks", type=int, default=2000)
    parser.add_argument("--callers", type=int, default=16)
    parser.add_argument("--requests", type=int, default=20, help="requests per caller")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = asyncio.run(main(args))
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
