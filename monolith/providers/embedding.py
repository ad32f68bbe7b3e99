"""The embedding interface: a batch of texts -> normalized float32 vectors."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import ClassVar, Literal

import numpy as np

from monolith.providers.base import Provider

# query/passage get the configured prefixes (e5: "query: ", "passage: "); raw is embedded as given
TextKind = Literal["query", "passage", "raw"]


class EmbeddingProvider(Provider):
    kind: ClassVar[str] = "embedding"
    dimension: int

    @abstractmethod
    async def embed(self, texts: Sequence[str], *, kind: TextKind) -> np.ndarray:
        """(len(texts), dimension) float32, rows L2-normalized."""

    async def embed_with_identity(self, texts: Sequence[str], *, kind: TextKind) -> tuple[np.ndarray, str]:
        """The vectors and the identity of the model that really made them (see the registry's
        facade, where a fallback mock may answer one call)."""
        return await self.embed(texts, kind=kind), self.identity

    @property
    def identity(self) -> str:
        """Which model made a vector: an index built by one identity is meaningless to another."""
        return f"{self.model_id} ({self.backend}, {self.dimension} dims)"

    def count_tokens(self, texts: Sequence[str]) -> int:
        """For the API's usage field; models with a tokenizer count exactly."""
        return sum(len(t.split()) for t in texts)

    def decode_tokens(self, token_ids: Sequence[int]) -> str:
        """Token-id input (the OpenAI API allows it) back to text, where the model has a tokenizer."""
        raise NotImplementedError(f"{self.backend} has no tokenizer: send text, not token ids")
