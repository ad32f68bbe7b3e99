"""Build a provider from its config section. Real backends are imported here, lazily, by name."""

from __future__ import annotations

import importlib
from pathlib import Path

from monolith.config import Settings
from monolith.providers.base import BlockingRunner, EngineSpec, Provider
from monolith.providers.mock_embedding import MockEmbedding
from monolith.providers.mock_llm import MockLLM
from monolith.providers.mock_stt import MockSTT
from monolith.providers.mock_tts import MockTTS

# provider section -> backend name -> "module:Class" (imported only when that backend loads)
REAL_BACKENDS: dict[str, dict[str, str]] = {
    "llm": {"vllm": "monolith.providers.vllm_llm:VLLMProvider", "remote": "monolith.providers.remote_llm:RemoteLLM"},
    "stt": {"sherpa-onnx": "monolith.providers.sherpa_stt:SherpaSTT"},
    "tts": {"fish-speech": "monolith.providers.fish_tts:FishTTS", "sherpa-onnx": "monolith.providers.sherpa_tts:SherpaTTS"},
    "embedding": {"sentence-transformers": "monolith.providers.st_embedding:STEmbedding"},
}


def served_id(settings: Settings, name: str) -> str:
    """The id clients use for this provider's model: a configured name (for a remote LLM, the one the
    server knows it by, unless served_model_name says otherwise), else the folder name."""
    if name == "llm" and settings.llm.served_model_name:
        return settings.llm.served_model_name
    if name == "llm" and settings.llm.is_remote and settings.llm.remote.model:
        return settings.llm.remote.model
    model: str = getattr(settings, name).model
    return Path(model.rstrip("/")).name or name


def build_mock(settings: Settings, name: str) -> Provider:
    model_id = served_id(settings, name)
    if name == "llm":
        return MockLLM(settings.llm.mock, model_id=model_id, max_model_len=settings.llm.max_model_len)
    if name == "stt":
        return MockSTT(settings.stt, model_id=model_id)
    if name == "tts":
        return MockTTS(settings.tts.mock, model_id=model_id, max_batch=settings.tts.max_batch)
    if name == "embedding":
        return MockEmbedding(settings.embedding.mock, model_id=model_id)
    raise KeyError(name)


def backend_class(name: str, backend: str) -> type[Provider]:
    """The class of a real backend (its module imports no model library until it loads)."""
    module_name, class_name = REAL_BACKENDS[name][backend].split(":")
    cls: type[Provider] = getattr(importlib.import_module(module_name), class_name)
    return cls


def build_real(
    settings: Settings, name: str, backend: str, runner: BlockingRunner, devices: tuple[int, ...],
    model_path: str | None = None,
) -> Provider:
    """Construct (not load) the real provider; `model_path` overrides the configured one (swaps)."""
    cls = backend_class(name, backend)
    section = getattr(settings, name)
    # a remote engine has no weights here
    path = "" if backend == "remote" else str(settings.resolve(model_path or section.model))
    spec = EngineSpec(model_path=path, model_id=served_id(settings, name), runner=runner, devices=devices,
                      settings=settings)
    provider: Provider = cls(section, spec)  # type: ignore[call-arg,arg-type]  # real backends take (section, spec)
    return provider
