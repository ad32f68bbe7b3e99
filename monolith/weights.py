"""Is each provider's weights folder complete? Checked by `--check` before anything loads."""

from __future__ import annotations

from pathlib import Path

from monolith.config import Settings
from monolith.providers.vllm_llm.chat_format import is_harmony_model
from monolith.scheduler.placement import Plan

# provider -> groups of alternatives; each group needs at least one matching file
REQUIRED: dict[str, list[tuple[str, ...]]] = {
    "llm": [("config.json",), ("*.safetensors", "*.bin", "*.pt"), ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")],
    "stt": [("tokens.txt",), ("*.onnx",)],
    "tts": [("config.json",), ("model.pth",), ("tokenizer.tiktoken",), ("special_tokens.json",), ("codec.pth",)],
    "embedding": [("config.json", "modules.json"), ("*.safetensors", "*.bin")],
}


def missing_files(provider: str, folder: Path) -> list[str]:
    """What the folder lacks, as glob alternatives; empty when complete."""
    if not folder.is_dir():
        return [f"folder {folder} does not exist"]
    missing = []
    for alternatives in REQUIRED[provider]:
        if provider == "llm" and "tokenizer.json" in alternatives and is_harmony_model(folder):
            continue  # gpt-oss: openai-harmony carries the tokenizer
        if not any(any(folder.glob(pattern)) for pattern in alternatives):
            missing.append(" or ".join(alternatives))
    return missing


def check_weights(settings: Settings, plan: Plan) -> tuple[list[str], list[str]]:
    """(report lines for every provider, the problems that would stop a provider serving)."""
    lines: list[str] = []
    problems: list[str] = []
    for name, assignment in plan.assignments.items():
        if assignment.is_mock:
            lines.append(f"{name}: mock, no weights needed")
            continue
        section = getattr(settings, name)
        folder = settings.resolve(section.model)
        missing = missing_files(name, folder)
        if not missing:
            lines.append(f"{name}: {folder} complete")
            continue
        incomplete = f"{name}: {folder} incomplete (missing {', '.join(missing)})"
        if section.fallback == "mock" and settings.server.ready_when_degraded:
            lines.append(f"{incomplete}; the mock would serve and /ready would say degraded (ready_when_degraded)")
            continue
        problems.append(incomplete)
        then = "its mock would serve but /ready would answer 503" if section.fallback == "mock" else "it cannot serve"
        lines.append(f"{incomplete}; {then}")
    return lines, problems
