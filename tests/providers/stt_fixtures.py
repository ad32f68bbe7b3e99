"""Tiny sherpa-onnx models (built once per run) and test audio for the STT tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from monolith.config import STTConfig
from monolith.providers.base import EngineSpec, ThreadRunner
from monolith.providers.sherpa_stt import SherpaSTT

from ..conftest import REPO

SPEECH_WAV = REPO / "tests" / "data" / "speech_en_16k.wav"  # espeak-ng: "Hello, what is the weather like today?"
RATE = 16000


def speech() -> np.ndarray:
    samples, rate = sf.read(SPEECH_WAV, dtype="float32")
    assert rate == RATE
    return samples


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def utterance(lead: float = 0.5, tail: float = 1.5) -> np.ndarray:
    """Silence, the spoken sentence (about 2.4 s), silence."""
    return np.concatenate([silence(lead), speech(), silence(tail)])


def stt(folder: Path, **config: object) -> SherpaSTT:
    settings = STTConfig(model=str(folder), num_threads=1, **config)  # type: ignore[arg-type]
    return SherpaSTT(settings, EngineSpec(model_path=str(folder), model_id=folder.name, runner=ThreadRunner()))
