"""FAISS GPU indexes are not thread safe even for search: searches on one are serialised."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest

from monolith.rag import service as rag_service
from monolith.rag.service import Generation


class EmptyStore:
    def chunks(self, ids: Any) -> dict[int, Any]:
        return {}

    def close(self) -> None:
        pass


def max_concurrent_searches(on_gpu: bool, monkeypatch: pytest.MonkeyPatch) -> int:
    inside = 0
    most = 0
    lock = threading.Lock()

    def slow_search(index: Any, query: np.ndarray, k: int) -> list[tuple[int, float]]:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        time.sleep(0.02)
        with lock:
            inside -= 1
        return []

    monkeypatch.setattr(rag_service.index, "search", slow_search)
    generation = Generation(EmptyStore(), object(), {}, None, on_gpu=on_gpu)  # type: ignore[arg-type]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: generation.lookup(np.zeros(4, dtype=np.float32), 3, -1.0), range(16)))
    return most


def test_searches_on_a_gpu_index_never_overlap(monkeypatch: pytest.MonkeyPatch) -> None:
    assert max_concurrent_searches(True, monkeypatch) == 1


def test_searches_on_a_cpu_index_run_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    assert max_concurrent_searches(False, monkeypatch) > 1
