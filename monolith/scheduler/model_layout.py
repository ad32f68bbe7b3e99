"""Is the LLM's parallel layout one vLLM accepts for this model? Checked before anything loads.

vLLM splits attention heads across tensor-parallel ranks: the heads must divide by the
tensor-parallel size (`ModelConfig.verify_with_parallel_config`), and the KV heads must divide
by it or it by them (KV heads are replicated when there are fewer than ranks;
`QKVParallelLinear`). Pipeline stages split the layers, so there can be no more stages than
layers. The shape comes from the model folder's `config.json`; for the production models a
built-in table stands in when the weights are not on this machine yet (a plan checked on a
laptop before it ships)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from monolith.config import LLMConfig


@dataclass(frozen=True)
class ModelShape:
    attention_heads: int
    kv_heads: int
    layers: int
    source: str  # where the numbers came from, for messages
    weights_gib: float | None = None  # parameters' size on the GPUs, where known

    def valid_tensor_parallel_sizes(self, up_to: int = 64) -> list[int]:
        return [tp for tp in range(1, up_to + 1) if self.tensor_parallel_problem(tp) is None]

    def tensor_parallel_problem(self, tp: int) -> str | None:
        if self.attention_heads % tp:
            return f"the model's {self.attention_heads} attention heads do not divide by tensor_parallel_size {tp}"
        if self.kv_heads % tp and tp % self.kv_heads:
            return (f"the model's {self.kv_heads} KV heads neither divide by tensor_parallel_size {tp} "
                    f"nor divide it")
        return None


# Folder name -> shape, for models whose weights may not be here when a plan is checked.
# gpt-oss: openai/gpt-oss-120b and -20b config.json (64 query heads, 8 KV heads); about 61 and
# 13 GiB of MXFP4 weights.
KNOWN_MODELS: dict[str, ModelShape] = {
    "gpt-oss-120b": ModelShape(64, 8, 36, "monolith's table for gpt-oss-120b", 61.0),
    "gpt-oss-20b": ModelShape(64, 8, 24, "monolith's table for gpt-oss-20b", 12.8),
}


class LayoutError(Exception):
    pass


def _int_field(config: dict[str, object], *names: str) -> int | None:
    for name in names:
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def read_model_shape(folder: Path) -> ModelShape:
    """The attention layout from `folder/config.json`; the known-model table if the folder is absent."""
    path = folder / "config.json"
    if not path.exists():
        known = KNOWN_MODELS.get(folder.name.lower())
        if known is not None and not folder.exists():
            return known
        raise LayoutError(f"{path} does not exist: the parallel layout cannot be checked against the model")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayoutError(f"{path} cannot be read as JSON ({type(exc).__name__}: {exc})") from None
    if not isinstance(config, dict):
        raise LayoutError(f"{path} is not a JSON object")
    # Multimodal configs keep the language model's numbers under text_config.
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    assert isinstance(text, dict)
    heads = _int_field(text, "num_attention_heads", "n_head", "num_heads")
    if heads is None:
        raise LayoutError(f"{path} has no num_attention_heads: the parallel layout cannot be checked")
    kv = _int_field(text, "num_key_value_heads", "num_kv_heads", "multi_query_group_num") or heads
    layers = _int_field(text, "num_hidden_layers", "n_layer", "num_layers") or 1
    return ModelShape(heads, kv, layers, str(path))


def layout_problems(config: LLMConfig, shape: ModelShape) -> list[str]:
    """Why vLLM would refuse this layout for this model; empty when it is fine."""
    problems = []
    tp, pp = config.tensor_parallel_size, config.pipeline_parallel_size
    why = shape.tensor_parallel_problem(tp)
    if why is not None:
        sizes = ", ".join(str(s) for s in shape.valid_tensor_parallel_sizes())
        problems.append(f"llm: {why} ({shape.source}); valid tensor_parallel_size values: {sizes}")
    if pp > shape.layers:
        problems.append(f"llm: pipeline_parallel_size {pp} is more than the model's {shape.layers} layers "
                        f"({shape.source})")
    return problems
