"""sentence-transformers in-process, on the embedding group's device, micro-batched across callers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from monolith import metrics
from monolith.config import EmbeddingConfig
from monolith.providers.base import Capabilities, EngineSpec, import_names
from monolith.providers.batching import MicroBatcher
from monolith.providers.embedding import EmbeddingProvider, TextKind

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

log = logging.getLogger(__name__)


class STEmbedding(EmbeddingProvider):
    backend = "sentence-transformers"
    required_files = (("config.json", "modules.json"), ("*.safetensors", "*.bin"))
    capabilities = Capabilities(batching=True)

    def __init__(self, config: EmbeddingConfig, spec: EngineSpec) -> None:
        super().__init__(model_id=spec.model_id, model_path=spec.model_path, runner=spec.runner)
        self.config = config
        self.device = spec.torch_device
        self.dimension = 0
        self._model: SentenceTransformer | None = None
        self._prefix: dict[TextKind, str] = {
            "query": config.query_prefix, "passage": config.passage_prefix, "raw": "",
        }
        self.batcher: MicroBatcher[str, np.ndarray] = MicroBatcher(
            self._encode_batch, max_items=config.batch_size, max_wait_s=config.max_batch_wait_ms / 1000
        )

    def import_libraries(self) -> None:
        import_names("sentence_transformers", "SentenceTransformer")

    async def load(self) -> None:
        start = time.perf_counter()
        await asyncio.to_thread(self.ensure_imported)
        self._model = await self.runner.run(self._load_blocking)
        self.dimension = int(self._model.get_embedding_dimension() or 0)
        log.info(
            "embedding model loaded",
            extra={"model": self.model_path, "device": self.device, "dimension": self.dimension,
                   "load_s": round(time.perf_counter() - start, 3)},
        )

    def _load_blocking(self) -> SentenceTransformer:
        from sentence_transformers import SentenceTransformer  # heavy: only when this backend loads

        # Weights come from weights/, never from a hub: a missing file must fail here, loudly.
        return SentenceTransformer(self.model_path, device=self.device, local_files_only=True)

    async def warmup(self) -> None:
        await self.embed(["warm-up"], kind="query")

    async def close(self) -> None:
        await self.batcher.close()
        self._model = None

    @property
    def model(self) -> SentenceTransformer:
        if self._model is None:
            raise RuntimeError("embedding model is not loaded")
        return self._model

    async def embed(self, texts: Sequence[str], *, kind: TextKind) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        prefix = self._prefix[kind]
        rows = await self.batcher.submit([prefix + t for t in texts])
        return np.stack(rows)

    async def _encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        metrics.EMBEDDING_BATCH_TEXTS.observe(len(texts))
        vectors = await self.runner.run(self._encode_blocking, texts)
        return list(vectors)

    def _encode_blocking(self, texts: list[str]) -> np.ndarray:
        out: Any = self.model.encode(
            texts, batch_size=self.config.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> int:
        tokenizer = self.model.tokenizer
        return sum(len(ids) for ids in tokenizer(list(texts), add_special_tokens=True)["input_ids"])

    def decode_tokens(self, token_ids: Sequence[int]) -> str:
        text: str = self.model.tokenizer.decode(list(token_ids), skip_special_tokens=True)
        return text

    def health_warnings(self) -> list[str]:
        if self._model is not None and self.device.startswith("cuda") and str(self._model.device) == "cpu":
            return [f"sentence-transformers runs on cpu, not {self.device}"]
        return []
