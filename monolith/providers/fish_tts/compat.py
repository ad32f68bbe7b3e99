"""Make Fish Speech 0.1.0 importable beside vLLM's CPU torch, without training-only packages.

Fish Speech imports torchaudio (PyPI's builds are CUDA-linked and break vLLM's import on the
CPU torch, so the install removes them), lightning and tensorboard (only for training-time
logging) and calls `pyrootutils.setup_root` at import (it looks for a source checkout). This
module puts small stand-ins in `sys.modules` for the packages that are missing, before the
first Fish Speech import. A real package that is installed always wins.

What Fish Speech's inference path uses from torchaudio: `load` (reference voices),
`list_audio_backends`, `functional.resample` and `transforms.Resample`. They are provided with
soundfile and soxr. Anything else raises a clear error if called.

Where torchaudio is installed (the CUDA image: vLLM requires torchaudio 2.11), it is 2.9 or newer:
`list_audio_backends` is gone, so Fish's `ReferenceLoader.__init__` fails, and `load` decodes
through torchcodec, which needs FFmpeg's shared libraries. The real module gets the two functions
Fish needs from here (soundfile reads reference voices); the rest of it stays as it is."""

from __future__ import annotations

import importlib.util
import sys
import types
from collections.abc import Callable
from typing import Any

_installed = False


def _resample(waveform: Any, orig_freq: int, new_freq: int) -> Any:
    import soxr
    import torch

    if orig_freq == new_freq:
        return waveform
    array = waveform.detach().cpu().numpy()
    flat = array.reshape(-1, array.shape[-1])
    out = [soxr.resample(row, orig_freq, new_freq) for row in flat]
    result = torch.from_numpy(__import__("numpy").stack(out)).reshape(*array.shape[:-1], -1)
    return result.to(waveform.dtype)


def _load(path: Any, *args: Any, **kwargs: Any) -> tuple[Any, int]:
    import soundfile
    import torch

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    return torch.from_numpy(samples.T.copy()), int(rate)


class _Resample:
    def __init__(self, orig_freq: int, new_freq: int, **_: Any) -> None:
        self.orig_freq, self.new_freq = orig_freq, new_freq

    def __call__(self, waveform: Any) -> Any:
        return _resample(waveform, self.orig_freq, self.new_freq)

    def to(self, *_: Any, **__: Any) -> _Resample:
        return self


def _missing(name: str) -> Callable[..., Any]:
    def fail(*_: Any, **__: Any) -> Any:
        raise RuntimeError(f"torchaudio.{name} is not available in monolith's torchaudio stand-in")

    return fail


class _StandIn(types.ModuleType):
    """A module whose unknown attributes are functions that fail when called, not at import."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return _missing(f"{self.__name__}.{name}")


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = _StandIn(name)
    module.__dict__.update(attrs)
    module.__spec__ = importlib.util.spec_from_loader(name, loader=None)
    sys.modules[name] = module
    return module


def _rank_zero_only(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


def _torchaudio() -> None:
    functional = _module("torchaudio.functional", resample=_resample)
    transforms = _module("torchaudio.transforms", Resample=_Resample)
    _module("torchaudio", load=_load, list_audio_backends=lambda: ["soundfile"], functional=functional,
            transforms=transforms, __version__="0.0+monolith-stand-in")


def _lightning() -> None:
    utilities = _module("lightning.pytorch.utilities", rank_zero_only=_rank_zero_only)
    pytorch = _module("lightning.pytorch", utilities=utilities)
    _module("lightning", pytorch=pytorch)
    rank_zero = _module("lightning_utilities.core.rank_zero", rank_zero_only=_rank_zero_only,
                        rank_prefixed_message=lambda message, rank: message)
    core = _module("lightning_utilities.core", rank_zero=rank_zero)
    _module("lightning_utilities", core=core)
    loggers = _module("pytorch_lightning.loggers", Logger=type("Logger", (), {}))
    _module("pytorch_lightning", Callback=type("Callback", (), {}), loggers=loggers)


def _patch_torchaudio() -> None:
    import torchaudio

    if not hasattr(torchaudio, "list_audio_backends"):  # torchaudio >= 2.9
        torchaudio.list_audio_backends = lambda: ["soundfile"]  # type: ignore[attr-defined]
        torchaudio.load = _load  # type: ignore[assignment]  # the real one needs torchcodec + FFmpeg


def install() -> None:
    """Idempotent: register the stand-ins that are needed, and neutralize pyrootutils."""
    global _installed
    if _installed:
        return
    if importlib.util.find_spec("torchaudio") is None:
        _torchaudio()
    else:
        _patch_torchaudio()
    if importlib.util.find_spec("lightning") is None:
        _lightning()
    if importlib.util.find_spec("tensorboard") is None:
        # descript-audiotools imports SummaryWriter at import time (for training logs)
        _module("torch.utils.tensorboard", SummaryWriter=type("SummaryWriter", (), {}))
    import pyrootutils

    pyrootutils.setup_root = lambda *args, **kwargs: None  # no source checkout to find
    _installed = True
