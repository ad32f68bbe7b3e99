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

Mode = Literal["streaming", "offline"]
ModelType = Literal["transducer", "zipformer2_ctc", "paraformer", "nemo_ctc"]


class ModelFilesError(Exception):
    pass


@dataclass(frozen=True)
class ModelFiles:
    folder: Path
    mode: Mode
    model_type: ModelType
    tokens: Path
    encoder: Path | None = None
    decoder: Path | None = None
    joiner: Path | None = None
    ctc_model: Path | None = None


def _pick(folder: Path, configured: str, stem: str) -> Path | None:
    """The configured file, else `<stem>*.onnx` (the fp32 one when an int8 sits beside it)."""
    if configured:
        path = folder / configured
        if not path.is_file():
            raise ModelFilesError(f"{path} does not exist")
        return path
    found = sorted(folder.glob(f"{stem}*.onnx"))
    if not found:
        return None
    full = [p for p in found if ".int8." not in p.name]
    return (full or found)[0]


def _check_onnx(path: Path) -> None:
    """sherpa-onnx crashes the whole process (a segfault) on a file that is not ONNX: parse it
    first, where a bad file is only an exception."""
    if importlib.util.find_spec("onnx") is None:
        return
    import onnx

    try:
        onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFilesError(f"{path} is not a valid ONNX model ({type(exc).__name__}: {exc})") from exc


def _encoder_metadata(path: Path) -> dict[str, str]:
    if importlib.util.find_spec("onnx") is None:
        return {}
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


def discover(folder: Path, config: STTConfig) -> ModelFiles:
    if not folder.is_dir():
        raise ModelFilesError(f"STT model folder {folder} does not exist")
    tokens = folder / (config.tokens or "tokens.txt")
    if not tokens.is_file():
        raise ModelFilesError(f"{tokens} does not exist (every sherpa-onnx model has a tokens.txt)")
    encoder = _pick(folder, config.encoder, "encoder")
    decoder = _pick(folder, config.decoder, "decoder")
    joiner = _pick(folder, config.joiner, "joiner")
    # CTC models: `model*.onnx`, or `ctc*.onnx` as sherpa-onnx's streaming zipformer2 CTC releases name it
    ctc = _pick(folder, config.ctc_model, "model") or _pick(folder, "", "ctc")
    model_type: ModelType
    if config.model_type != "auto":
        model_type = config.model_type
    elif encoder and decoder and joiner:
        model_type = "transducer"
    elif encoder and decoder:
        model_type = "paraformer"
    elif ctc:
        model_type = "zipformer2_ctc"
    else:
        raise ModelFilesError(
            f"{folder}: no encoder/decoder/joiner*.onnx (transducer), encoder/decoder (paraformer) "
            "or model*.onnx / ctc*.onnx (CTC) found; set stt.encoder/decoder/joiner or stt.ctc_model"
        )
    mode: Mode
    if config.mode != "auto":
        mode = config.mode
    else:
        # Streaming zipformer encoders (and CTC models) carry their chunk size; offline ones do not.
        first = encoder or ctc
        meta = _encoder_metadata(first) if first else {}
        streaming_hint = "decode_chunk_len" in meta or "streaming" in folder.name.lower()
        mode = "streaming" if streaming_hint else "offline"
    needed = {"transducer": (encoder, decoder, joiner), "paraformer": (encoder, decoder)}.get(model_type, (ctc,))
    if any(p is None for p in needed):
        raise ModelFilesError(f"{folder}: a {model_type} model needs files that are missing")
    for path in needed:
        assert path is not None
        _check_onnx(path)
    return ModelFiles(folder, mode, model_type, tokens, encoder, decoder, joiner, ctc)


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
        return cls.from_nemo_ctc(model=_s(files.ctc_model), **common)
    return cls.from_zipformer2_ctc(model=_s(files.ctc_model), **common)


def build_offline(files: ModelFiles, config: STTConfig, provider: str) -> Any:
    """sherpa-onnx's offline constructors take no device index: CUDA runs on the first GPU the
    process sees (the provider warns when the placement names another one)."""
    import sherpa_onnx

    common = _common(files, config, provider)
    cls = sherpa_onnx.OfflineRecognizer
    if files.model_type == "transducer":
        return cls.from_transducer(
            encoder=_s(files.encoder), decoder=_s(files.decoder), joiner=_s(files.joiner), **common, **_hotwords(config)
        )
    if files.model_type == "paraformer":
        return cls.from_paraformer(paraformer=_s(files.encoder), **common)
    if files.model_type == "nemo_ctc":
        return cls.from_nemo_ctc(model=_s(files.ctc_model), **common)
    return cls.from_zipformer_ctc(model=_s(files.ctc_model), **common)


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
