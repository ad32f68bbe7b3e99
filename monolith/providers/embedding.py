"""The embedding interface: a batch of texts -> normalized float32 vectors."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from monolith.providers.base import Provider

TextKind = Literal["query", "passage"]


class EmbeddingProvider(Provider):
    kind: ClassVar[str] = "embedding"
    dimension: int

    @abstractmethod
    async def embed(self, texts: Sequence[str], *, kind: TextKind) -> np.ndarray:
        """(len(texts), dimension) float32, rows L2-normalized."""
