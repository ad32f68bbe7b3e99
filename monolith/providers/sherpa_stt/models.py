"""Find a sherpa-onnx model's files, decide streaming vs offline, and build the recognizer."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from monolith.config import STTConfig
from monolith.providers.onnx_files import ModelFilesError, check_onnx, onnx_metadata

Mode = Literal["streaming", "offline"]
ModelType = Literal["transducer", "nemo_transducer", "zipformer2_ctc", "paraformer", "nemo_ctc", "whisper",
                    "sense_voice", "moonshine"]
OFFLINE_ONLY = ("whisper", "sense_voice", "moonshine", "nemo_transducer")


@dataclass(frozen=True)
class ModelFiles:
    folder: Path
    mode: Mode
    model_type: ModelType
    tokens: Path
    encoder: Path | None = None
    decoder: Path | None = None
    joiner: Path | None = None
    model: Path | None = None  # single-file models: CTC, SenseVoice, offline paraformer


def _pick(folder: Path, configured: str, *patterns: str) -> Path | None:
    """The configured file, else the first file matching a pattern (the fp32 one when an int8
    sits beside it)."""
    if configured:
        path = folder / configured
        if not path.is_file():
            raise ModelFilesError(f"{path} does not exist")
        return path
    for pattern in patterns:
        found = sorted(folder.glob(pattern))
        if found:
            full = [p for p in found if ".int8." not in p.name]
            return (full or found)[0]
    return None


def _family_of_single_file(meta: dict[str, str]) -> ModelType:
    kind = meta.get("model_type", "")
    if kind == "sense_voice_ctc":
        return "sense_voice"
    if kind.startswith("EncDec"):
        return "nemo_ctc"
    if kind == "paraformer":
        return "paraformer"
    return "zipformer2_ctc"


def discover(folder: Path, config: STTConfig) -> ModelFiles:
    """Which sherpa-onnx model family the folder holds (from its files, then the ONNX metadata
    sherpa-onnx itself reads), streaming or offline, and its files. `stt.model_type` and the file
    keys override what is found; a missing or mismatched file is an error naming it."""
    if not folder.is_dir():
        raise ModelFilesError(f"STT model folder {folder} does not exist")
    tokens = _pick(folder, config.tokens, "tokens.txt", "*-tokens.txt", "*tokens*.txt")
    if tokens is None:
        raise ModelFilesError(f"{folder}: no tokens.txt (every sherpa-onnx model has one)")
    encoder = _pick(folder, config.encoder, "encoder*.onnx", "encoder*.ort", "*-encoder*.onnx", "*encoder*.onnx")
    decoder = _pick(folder, config.decoder, "decoder*.onnx", "decoder*.ort", "*-decoder*.onnx", "*decoder*.onnx")
    joiner = _pick(folder, config.joiner, "joiner*.onnx", "*-joiner*.onnx")
    single = _pick(folder, config.ctc_model, "model*.onnx", "ctc*.onnx")
    model_type: ModelType
    if config.model_type != "auto":
        model_type = config.model_type
    elif encoder is not None and encoder.suffix == ".ort" or (encoder and encoder.name.startswith("encoder_model")):
        model_type = "moonshine"
    elif encoder and decoder and joiner:
        model_type = "nemo_transducer" if onnx_metadata(encoder).get("model_type", "").startswith("EncDec") \
            else "transducer"
    elif encoder and decoder:
        model_type = "whisper" if onnx_metadata(encoder).get("model_type", "").startswith("whisper") else "paraformer"
    elif single:
        model_type = _family_of_single_file(onnx_metadata(single))
    else:
        raise ModelFilesError(
            f"{folder}: no model files found: encoder/decoder/joiner*.onnx (transducer), *-encoder/*-decoder.onnx "
            "(Whisper), encoder_model/decoder_model_merged.ort (Moonshine), encoder/decoder (streaming paraformer), "
            "or model*.onnx (CTC, SenseVoice, paraformer); set stt.encoder/decoder/joiner/ctc_model or stt.model_type"
        )
    needed: dict[str, tuple[tuple[str, Path | None], ...]] = {
        "transducer": (("encoder", encoder), ("decoder", decoder), ("joiner", joiner)),
        "nemo_transducer": (("encoder", encoder), ("decoder", decoder), ("joiner", joiner)),
        "whisper": (("encoder", encoder), ("decoder", decoder)),
        "moonshine": (("encoder", encoder), ("decoder", decoder)),
    }
    single_file = (("model", single),)
    wanted = needed.get(model_type) or (
        (("encoder", encoder), ("decoder", decoder)) if model_type == "paraformer" and encoder and decoder else single_file)
    for role, path in wanted:
        if path is None:
            raise ModelFilesError(f"{folder}: a {model_type} model needs its {role} file; none was found "
                                  f"(set stt.{'ctc_model' if role == 'model' else role})")
        check_onnx(path)
    mode: Mode
    if model_type in OFFLINE_ONLY:
        mode = "offline"
        if config.mode == "streaming":
            raise ModelFilesError(f"{folder}: {model_type} models decode whole utterances; stt.mode cannot be streaming")
    elif config.mode != "auto":
        mode = config.mode
    else:
        # Streaming zipformer encoders (and CTC models) carry their chunk size; offline ones do not.
        meta = onnx_metadata(encoder or single)
        mode = "streaming" if "decode_chunk_len" in meta or "streaming" in folder.name.lower() else "offline"
    return ModelFiles(folder, mode, model_type, tokens, encoder, decoder, joiner,
                      single if wanted is single_file else None)


def _s(path: Path | None) -> str:
    assert path is not None
    return str(path)


def _common(files: ModelFiles, config: STTConfig, provider: str) -> dict[str, Any]:
    return {
        "tokens": str(files.tokens),
        "num_threads": config.num_threads,
        "sample_rate": config.sample_rate,
        "feature_dim": config.feature_dim,
        "decoding_method": config.decoding_method,
        "provider": provider,
    }


def _hotwords(config: STTConfig) -> dict[str, Any]:
    if not config.hotwords_file:
        return {}
    return {"hotwords_file": config.hotwords_file, "hotwords_score": config.hotwords_score}


def build_online(files: ModelFiles, config: STTConfig, provider: str, device: int) -> Any:
    import sherpa_onnx

    common = _common(files, config, provider) | {
        "device": device,
        "enable_endpoint_detection": True,
        "rule1_min_trailing_silence": config.endpoint_no_speech_silence_ms / 1000,
        "rule2_min_trailing_silence": config.endpoint_trailing_silence_ms / 1000,
        "rule3_min_utterance_length": config.max_utterance_s,
    }
    cls = sherpa_onnx.OnlineRecognizer
    if files.model_type == "transducer":
        return cls.from_transducer(
            encoder=_s(files.encoder), decoder=_s(files.decoder), joiner=_s(files.joiner), **common, **_hotwords(config)
        )
    if files.model_type == "paraformer":
        return cls.from_paraformer(encoder=_s(files.encoder), decoder=_s(files.decoder), **common)
    if files.model_type == "nemo_ctc":
        return cls.from_nemo_ctc(model=_s(files.model), **common)
    if files.model_type == "zipformer2_ctc":
        return cls.from_zipformer2_ctc(model=_s(files.model), **common)
    raise ModelFilesError(f"{files.folder}: a {files.model_type} model cannot stream; use stt.mode = \"offline\"")


def build_offline(files: ModelFiles, config: STTConfig, provider: str) -> Any:
    """sherpa-onnx's offline constructors take no device index: CUDA runs on the first GPU the
    process sees (the provider warns when the placement names another one)."""
    import sherpa_onnx

    common = _common(files, config, provider)
    short = {k: common[k] for k in ("tokens", "num_threads", "decoding_method", "provider")}
    cls = sherpa_onnx.OfflineRecognizer
    kind = files.model_type
    if kind in ("transducer", "nemo_transducer"):
        return cls.from_transducer(
            encoder=_s(files.encoder), decoder=_s(files.decoder), joiner=_s(files.joiner), **common,
            model_type=kind, **_hotwords(config),
        )
    if kind == "paraformer":
        return cls.from_paraformer(paraformer=_s(files.model or files.encoder), **common)
    if kind == "nemo_ctc":
        return cls.from_nemo_ctc(model=_s(files.model), **common)
    if kind == "whisper":
        language = "" if config.language == "auto" else config.language
        return cls.from_whisper(encoder=_s(files.encoder), decoder=_s(files.decoder), language=language, **short)
    if kind == "sense_voice":
        language = "auto" if config.language == "auto" else config.language
        return cls.from_sense_voice(model=_s(files.model), language=language, use_itn=True, **common)
    if kind == "moonshine":
        return cls.from_moonshine_v2(encoder=_s(files.encoder), decoder=_s(files.decoder), **short)
    return cls.from_zipformer_ctc(model=_s(files.model), **common)


@dataclass(frozen=True)
class CudaProbe:
    """Can this sherpa-onnx install run on CUDA? The PyPI wheel bundles a CPU-only onnxruntime and
    silently falls back to CPU when asked for CUDA; a CUDA build ships onnxruntime's CUDA provider
    library beside it, which loads only if the CUDA and cuDNN it was built for are on the machine."""

    library: Path | None  # libonnxruntime_providers_cuda.so, when the build has one
    missing: tuple[str, ...] = ()  # shared libraries it needs that the loader cannot find
    error: str = ""

    @property
    def usable(self) -> bool:
        return self.library is not None and not self.missing and not self.error

    def describe(self, device: int) -> str:
        if self.library is None:
            return (f"sherpa-onnx in this install has no CUDA support (the PyPI wheel is CPU-only): STT runs on "
                    f"cpu, not cuda:{device}; install sherpa-onnx's CUDA build (see Dockerfile.cuda)")
        why = f"missing {', '.join(self.missing)}" if self.missing else self.error
        return (f"sherpa-onnx's CUDA provider {self.library.name} cannot load ({why}): STT runs on cpu, not "
                f"cuda:{device}; install the sherpa-onnx build for this machine's CUDA and cuDNN (see Dockerfile.cuda)")


def sherpa_lib_dir() -> Path | None:
    spec = importlib.util.find_spec("sherpa_onnx")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "lib"


def probe_cuda_provider(lib_dir: Path | None = None) -> CudaProbe:
    """Find the CUDA provider library and ask the dynamic loader (in another process: loading it
    here would map CUDA and cuDNN libraries before torch chooses its own) what it lacks."""
    folder = lib_dir if lib_dir is not None else sherpa_lib_dir()
    found = sorted(folder.glob("libonnxruntime_providers_cuda*.so*")) if folder is not None and folder.is_dir() else []
    if not found:
        return CudaProbe(None)
    library = found[0]
    ldd = shutil.which("ldd")
    try:
        if ldd is not None:
            out = subprocess.run([ldd, str(library)], capture_output=True, text=True, timeout=30)
            missing = tuple(line.split("=>")[0].strip() for line in out.stdout.splitlines() if "not found" in line)
            return CudaProbe(library, missing, "" if out.returncode == 0 or missing else out.stderr.strip())
        check = subprocess.run([sys.executable, "-c", "import ctypes, sys; ctypes.CDLL(sys.argv[1])", str(library)],
                               capture_output=True, text=True, timeout=30)
        return CudaProbe(library, (), check.stderr.strip().splitlines()[-1] if check.returncode else "")
    except (OSError, subprocess.SubprocessError) as exc:
        return CudaProbe(library, (), f"could not check it: {exc}")
