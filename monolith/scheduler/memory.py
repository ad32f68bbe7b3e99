"""A rough GPU memory estimate per device, for `--check`: does the plan fit before it loads?

vLLM takes `gpu_memory_utilization` of each of its GPUs and fills what its weights leave with
KV cache. The other engines take about their weights' size plus working memory. Sizes come
from the weights folders when they are here, else from typical production figures."""

from __future__ import annotations

import json
from pathlib import Path

from monolith.config import Settings
from monolith.scheduler.model_layout import KNOWN_MODELS
from monolith.scheduler.placement import Plan

GIB = 1024**3
# Typical footprints (GiB) when the folder is not here: multilingual-e5-base, a streaming
# zipformer with onnxruntime's CUDA arena, S1-mini with its codec, caches and compiled graphs.
TYPICAL_GIB = {"stt": 1.0, "embedding": 1.5, "tts": 4.0}
OVERHEAD = {"stt": 1.5, "embedding": 1.3, "tts": 2.0}  # working memory per GiB of weights
SUFFIXES = {"stt": (".onnx", ".ort"), "embedding": (".safetensors", ".bin"), "tts": (".pth", ".safetensors"),
            "llm": (".safetensors", ".bin", ".pt")}


def weights_gib(folder: Path, provider: str) -> float | None:
    if not folder.is_dir():
        return None
    total = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and p.suffix in SUFFIXES[provider])
    return total / GIB if total else None


# OpenAudio S1-mini's slow transformer, for the batched TTS decoder's cache when config.json is not here
S1_MINI_CACHE = {"n_layer": 28, "n_local_heads": 8, "head_dim": 128, "max_seq_len": 8192}
DTYPE_BYTES = {"bfloat16": 2, "float16": 2, "float32": 4}


def tts_batch_cache_gib(settings: Settings) -> float:
    """The batched Fish decoder's KV cache: `max_batch` rows of the model's whole context."""
    tts = settings.tts
    if tts.provider != "fish-speech" or tts.max_batch <= 1:
        return 0.0
    sizes = dict(S1_MINI_CACHE)
    config = settings.resolve(tts.model) / "config.json"
    if config.is_file():
        found = json.loads(config.read_text(encoding="utf-8"))
        sizes.update({k: found[k] for k in sizes if isinstance(found.get(k), int)})
    per_row = 2 * sizes["n_layer"] * sizes["n_local_heads"] * sizes["head_dim"] * sizes["max_seq_len"]
    return tts.max_batch * per_row * DTYPE_BYTES[tts.precision] / GIB


def estimate(settings: Settings, plan: Plan) -> list[str]:
    """One line per GPU in use: who is on it and about how much memory they take."""
    memory = {g.index: (g.memory_mib or 0) / 1024 for g in plan.inventory.gpus}
    used: dict[int, list[tuple[str, float]]] = {}
    lines: list[str] = []
    llm = plan.assignments["llm"]
    if llm.devices:
        folder = settings.resolve(settings.llm.model)
        known = KNOWN_MODELS.get(folder.name.lower())
        weights = weights_gib(folder, "llm") or (known.weights_gib if known else None)
        shards = llm.tensor_parallel_size * llm.pipeline_parallel_size
        for device in llm.devices:
            taken = settings.llm.gpu_memory_utilization * memory.get(device, 0.0)
            used.setdefault(device, []).append(("llm", taken))
        if weights is not None:
            per_gpu = weights / shards
            taken = settings.llm.gpu_memory_utilization * memory.get(llm.devices[0], 0.0)
            kv = taken - per_gpu
            fits = f"~{kv:.0f} GiB left for KV cache" if kv > 0 else "THE WEIGHTS DO NOT FIT"
            lines.append(f"memory: llm weights ~{weights:.0f} GiB / {shards} = ~{per_gpu:.1f} GiB per GPU; "
                         f"vLLM takes {settings.llm.gpu_memory_utilization:g} x {memory.get(llm.devices[0], 0):.0f} GiB"
                         f" = {taken:.0f} GiB per GPU: {fits}")
    for name in ("stt", "embedding", "tts"):
        assignment = plan.assignments[name]
        if not assignment.devices:
            continue
        found = weights_gib(settings.resolve(getattr(settings, name).model), name)
        gib = found * OVERHEAD[name] if found is not None else TYPICAL_GIB[name]
        if name == "tts":
            gib += tts_batch_cache_gib(settings)
        used.setdefault(assignment.devices[0], []).append((name, gib))
    rows: dict[str, list[int]] = {}  # GPUs with the same load share one line
    for device, parts in sorted(used.items()):
        total = sum(g for _, g in parts)
        who = " + ".join(f"{n} ~{g:.1f}" for n, g in parts)
        have = memory.get(device, 0.0)
        verdict = "" if not have else (" (fits)" if total <= have else " (DOES NOT FIT)")
        rows.setdefault(f"{who} = ~{total:.1f} of {have:.0f} GiB{verdict}", []).append(device)
    for row, devices in rows.items():
        label = "GPU" if len(devices) == 1 else "GPUs"
        lines.append(f"memory: {label} {','.join(str(d) for d in devices)}: {row}")
    return lines
