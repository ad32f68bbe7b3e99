"""ONNX model files, read before an engine sees them: sherpa-onnx crashes the whole process
(a segfault, or exit 255 for a missing metadata key) where a Python check is only an exception."""

from __future__ import annotations

import importlib.util
from pathlib import Path


class ModelFilesError(Exception):
    """A model folder lacks a file, or holds one the engine would choke on."""


def check_onnx(path: Path) -> None:
    """Parse `path` as ONNX (`.ort` files are onnxruntime's own format and are left to it)."""
    onnx_metadata(path)


def onnx_metadata(path: Path | None) -> dict[str, str]:
    """The model's metadata properties (what sherpa-onnx reads to know the model); parsing it
    also proves the file is ONNX."""
    if path is None or path.suffix != ".onnx" or importlib.util.find_spec("onnx") is None:
        return {}
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf's DecodeError and friends
        raise ModelFilesError(f"{path} is not a valid ONNX model ({type(exc).__name__}: {exc})") from exc
    return {p.key: p.value for p in model.metadata_props}
