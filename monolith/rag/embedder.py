"""What retrieval needs from an embedding model (the registry's facade or a provider fits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

EmbedKind = Literal["query", "passage"]


class Embedder(Protocol):
    @property
    def identity(self) -> str:
        """Model, backend and dimension: vectors from different identities never mix."""
        ...

    @property
    def dimension(self) -> int: ...

    async def embed_with_identity(self, texts: Sequence[str], *, kind: EmbedKind) -> tuple[np.ndarray, str]: ...
