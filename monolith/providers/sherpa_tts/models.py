"""Which sherpa-onnx TTS family a folder holds, its files, and the OfflineTts built from them.

| family | files | metadata (`model_type`) |
|---|---|---|
| VITS / Piper | `*.onnx`, `tokens.txt` | `vits` (Piper: `comment` says piper) |
| Matcha | acoustic `model*.onnx` + vocoder (`vocos*.onnx`, `hifigan*.onnx`), `tokens.txt` | `matcha-tts` |
| Kokoro | `model*.onnx`, `voices.bin`, `tokens.txt` | `kokoro` |

sherpa-onnx ends the whole process (exit 255) when a model lacks a metadata key it needs, so the
keys are checked here first, where a missing one is only an exception."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from monolith.config import TTSConfig
from monolith.providers.onnx_files import ModelFilesError, onnx_metadata

Family = Literal["vits", "matcha", "kokoro"]
NEEDED_KEYS: dict[Family, tuple[str, ...]] = {
    "vits": ("sample_rate", "n_speakers", "language", "comment"),
    "matcha": ("sample_rate", "n_speakers"),
    "kokoro": ("sample_rate", "n_speakers"),
}


@dataclass(frozen=True)
class VoiceFiles:
    folder: Path
    family: Family
    model: Path
    tokens: Path
    metadata: dict[str, str]
    vocoder: Path | None = None
    voices: Path | None = None

    @property
    def speakers(self) -> list[str]:
        """Voice ids: `default` (speaker 0), then any named speakers (Kokoro's `speaker_names`)."""
        names = [n.strip() for n in self.metadata.get("speaker_names", "").split(",") if n.strip()]
        return ["default", *names]

    @property
    def espeak_voice(self) -> str:
        return self.metadata.get("voice", "en-us")


def discover_voice(folder: Path) -> VoiceFiles:
    if not folder.is_dir():
        raise ModelFilesError(f"TTS model folder {folder} does not exist")
    tokens = folder / "tokens.txt"
    if not tokens.is_file():
        raise ModelFilesError(f"{tokens} does not exist (every sherpa-onnx voice has a tokens.txt)")
    onnx_files = sorted(p for p in folder.glob("*.onnx") if ".int8." not in p.name) or sorted(folder.glob("*.onnx"))
    vocoder = next((p for p in onnx_files if p.name.startswith(("vocos", "hifigan"))), None)
    models = [p for p in onnx_files if p != vocoder]
    if not models:
        raise ModelFilesError(f"{folder}: no voice model (*.onnx) found")
    model = models[0]
    metadata = onnx_metadata(model)
    kind = metadata.get("model_type", "")
    family: Family
    if kind == "kokoro" or (folder / "voices.bin").is_file():
        family = "kokoro"
    elif kind.startswith("matcha") or vocoder is not None:
        family = "matcha"
    else:
        family = "vits"
    missing = [key for key in NEEDED_KEYS[family] if key not in metadata]
    if missing:
        raise ModelFilesError(f"{model}: sherpa-onnx needs the metadata {', '.join(missing)} in this {family} "
                              "model (scripts/make_speech_weights.py shows how to add Piper's)")
    if family == "matcha" and vocoder is None:
        raise ModelFilesError(f"{folder}: a Matcha voice needs its vocoder (vocos*.onnx or hifigan*.onnx)")
    voices = folder / "voices.bin" if family == "kokoro" else None
    if voices is not None and not voices.is_file():
        raise ModelFilesError(f"{folder}: a Kokoro voice needs voices.bin")
    return VoiceFiles(folder, family, model, tokens, metadata, vocoder, voices)


def build_tts(files: VoiceFiles, config: TTSConfig, provider: str) -> Any:
    import sherpa_onnx

    model_config: dict[str, Any] = {"num_threads": config.num_threads, "provider": provider}
    if files.family == "vits":
        model_config["vits"] = sherpa_onnx.OfflineTtsVitsModelConfig(
            model=str(files.model), tokens=str(files.tokens), noise_scale=config.noise_scale,
            noise_scale_w=config.noise_scale_w, length_scale=config.length_scale)
    elif files.family == "matcha":
        model_config["matcha"] = sherpa_onnx.OfflineTtsMatchaModelConfig(
            acoustic_model=str(files.model), vocoder=str(files.vocoder), tokens=str(files.tokens),
            noise_scale=config.noise_scale, length_scale=config.length_scale)
    else:
        model_config["kokoro"] = sherpa_onnx.OfflineTtsKokoroModelConfig(
            model=str(files.model), voices=str(files.voices), tokens=str(files.tokens), length_scale=config.length_scale)
    return sherpa_onnx.OfflineTts(sherpa_onnx.OfflineTtsConfig(
        model=sherpa_onnx.OfflineTtsModelConfig(**model_config), max_num_sentences=1))
