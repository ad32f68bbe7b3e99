"""The FAISS index: inner product over normalized vectors (= cosine), addressed by chunk id.

Flat is exact and the default. HNSW and IVF trade a little recall for speed on large corpora.
Every kind is wrapped in `IndexIDMap2`, so search results are chunk ids from the store. FAISS is
imported lazily: the light install serves without it (RAG then reports itself unavailable)."""

from __future__ import annotations

import hashlib
import importlib.util
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

IndexType = Literal["flat", "hnsw", "ivf"]


class IndexUnavailable(Exception):
    pass


@dataclass(frozen=True)
class IndexParams:
    kind: IndexType = "flat"
    hnsw_m: int = 32
    hnsw_ef_search: int = 64
    ivf_nprobe: int = 8


def faiss_available() -> bool:
    return importlib.util.find_spec("faiss") is not None


def _faiss() -> Any:
    import faiss  # lazily: optional in the light install

    return faiss


def build(ids: np.ndarray, vectors: np.ndarray, dimension: int, params: IndexParams) -> Any:
    faiss = _faiss()
    n = len(ids)
    if params.kind == "hnsw":
        inner = faiss.IndexHNSWFlat(dimension, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efSearch = params.hnsw_ef_search
    elif params.kind == "ivf" and n > 0:
        nlist = max(1, min(n, int(4 * math.sqrt(n))))
        quantizer = faiss.IndexFlatIP(dimension)
        inner = faiss.IndexIVFFlat(quantizer, dimension, nlist, faiss.METRIC_INNER_PRODUCT)
        inner.train(vectors)
        inner.nprobe = min(params.ivf_nprobe, nlist)
    else:  # flat, or an empty IVF (nothing to train on)
        inner = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIDMap2(inner)
    if n:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def apply_search_params(index: Any, params: IndexParams) -> None:
    """efSearch/nprobe are not saved in the file; set them after every load."""
    faiss = _faiss()
    inner = faiss.downcast_index(index.index) if hasattr(index, "index") else index
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = params.hnsw_ef_search
    elif isinstance(inner, faiss.IndexIVF):
        inner.nprobe = min(params.ivf_nprobe, inner.nlist)


def write_temp(index: Any, path: Path) -> Path:
    """Write beside `path` without replacing it yet (the ingest renames it when all is ready)."""
    faiss = _faiss()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    faiss.write_index(index, str(tmp))
    fsync(tmp)
    return tmp


def read(path: Path, params: IndexParams) -> Any:
    faiss = _faiss()
    index = faiss.read_index(str(path))
    apply_search_params(index, params)
    return index


def search(index: Any, query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """(chunk id, score) best first; missing slots (k > size) are dropped."""
    if index.ntotal == 0:
        return []
    scores, ids = index.search(np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32), min(k, index.ntotal))
    return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]


def to_gpu(index: Any, device: int) -> tuple[Any, Any]:
    """(gpu index, its resources); raises IndexUnavailable when this FAISS build has no GPU support."""
    faiss = _faiss()
    if not hasattr(faiss, "StandardGpuResources"):
        raise IndexUnavailable("this FAISS build has no GPU support (faiss-cpu is installed; install faiss-gpu)")
    resources = faiss.StandardGpuResources()
    return faiss.index_cpu_to_gpu(resources, device, index), resources


# --- files -----------------------------------------------------------------------------------


def temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def stale_temps(path: Path) -> list[Path]:
    """Temporary files left by an interrupted ingest (any process id)."""
    return sorted(path.parent.glob(f".{path.name}.tmp-*")) if path.parent.is_dir() else []


def file_digest(path: Path) -> tuple[int, str]:
    with path.open("rb") as f:
        digest = hashlib.file_digest(f, "sha256").hexdigest()
    return path.stat().st_size, digest


def fsync(path: Path) -> None:
    """Flush a file (or a folder's entries, after a rename) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
