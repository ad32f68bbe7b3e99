"""Hashed bag-of-words vectors: deterministic, and similar texts are close, so mock RAG still means something."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence

import numpy as np

from monolith.config import MockEmbeddingConfig
from monolith.providers.embedding import EmbeddingProvider, TextKind

_WORD = re.compile(r"[A-Za-z0-9]+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]+")


def features(text: str) -> list[str]:
    """Lower-cased Latin words, and character bigrams for Japanese/Chinese/Korean runs."""
    feats = [w.lower() for w in _WORD.findall(text)]
    for run in _CJK.findall(text):
        feats.extend(run[i : i + 2] for i in range(max(len(run) - 1, 1)))
    return feats


def hashed_vector(text: str, dimension: int) -> np.ndarray:
    vec = np.zeros(dimension, dtype=np.float32)
    for feat in features(text):
        digest = hashlib.blake2b(feat.encode(), digest_size=8).digest()
        h = int.from_bytes(digest, "little")
        vec[h % dimension] += 1.0 if (h >> 63) == 0 else -1.0
    norm = float(np.linalg.norm(vec))
    return vec / norm if norm else vec


class MockEmbedding(EmbeddingProvider):
    backend = "mock"
    is_mock = True

    def __init__(self, config: MockEmbeddingConfig, *, model_id: str = "mock-embedding") -> None:
        super().__init__(model_id=model_id)
        self.config = config
        self.dimension = config.dimension
        self.calls = 0

    async def embed(self, texts: Sequence[str], *, kind: TextKind) -> np.ndarray:
        self.calls += 1
        await asyncio.sleep(self.config.delay_ms / 1000)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.stack([hashed_vector(t, self.dimension) for t in texts])
