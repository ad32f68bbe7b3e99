"""The sentence-transformers provider with a real (tiny) model: vectors, prefixes, micro-batching."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from monolith.config import Settings, load_settings
from monolith.providers.base import EngineSpec, ThreadRunner
from monolith.providers.st_embedding import STEmbedding


def provider(root: Path, **embedding: str) -> STEmbedding:
    env = {f"MONOLITH_EMBEDDING__{k.upper()}": v for k, v in embedding.items()}
    settings: Settings = load_settings(root / "config.toml", env)
    spec = EngineSpec(model_path=str(settings.resolve(settings.embedding.model)), model_id="all-minilm-l6-v2",
                      runner=ThreadRunner(), settings=settings)
    return STEmbedding(settings.embedding, spec)


async def test_vectors_are_normalized_float32_and_meaningful(tiny_root: Path) -> None:
    st = provider(tiny_root)
    await st.load()
    vectors = await st.embed(["The cat sat on the mat.", "A cat was sitting on a rug.", "Stock prices fell."], kind="raw")
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384) and st.dimension == 384
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3
    assert st.identity == "all-minilm-l6-v2 (sentence-transformers, 384 dims)"
    assert st.count_tokens(["hello world"]) == 4  # [CLS] hello world [SEP]
    assert st.decode_tokens([7592, 2088]) == "hello world"
    await st.close()


async def test_query_and_passage_prefixes_are_applied(tiny_root: Path) -> None:
    st = provider(tiny_root, query_prefix='"query: "', passage_prefix='"passage: "')
    await st.load()
    query, passage, raw = [await st.embed(["battery life"], kind=k) for k in ("query", "passage", "raw")]
    prefixed_by_hand = await st.embed(["query: battery life"], kind="raw")
    np.testing.assert_allclose(query, prefixed_by_hand, atol=1e-5)
    assert not np.allclose(query, passage, atol=1e-3) and not np.allclose(query, raw, atol=1e-3)
    await st.close()


async def test_concurrent_callers_share_forward_passes(tiny_root: Path) -> None:
    st = provider(tiny_root, max_batch_wait_ms="20.0", batch_size="64")
    await st.load()
    texts = [f"Question number {i} about shipping and returns." for i in range(16)]
    alone = np.concatenate([await st.embed([t], kind="query") for t in texts])
    before = st.batcher.stats.batches
    together = await asyncio.gather(*(st.embed([t], kind="query") for t in texts))
    assert st.batcher.stats.batches - before <= 2  # 16 callers, one (at most two) forward passes
    np.testing.assert_allclose(np.concatenate(together), alone, atol=1e-5)  # each got its own vector
    await st.close()


async def test_a_missing_model_folder_fails_to_load_without_touching_a_hub(tmp_path: Path, tiny_root: Path) -> None:
    st = provider(tiny_root, model=f'"{tmp_path / "nothing-here"}"')
    with pytest.raises(Exception, match="nothing-here"):
        await st.load()
