"""Fish Speech's semantic worker thread: bound to the TTS device, load errors raised (not a
hang), stoppable; and the torchaudio 2.9+ stand-ins Fish needs beside vLLM's torchaudio."""

from __future__ import annotations

import sys
import threading
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from monolith.config import TTSConfig
from monolith.providers.base import EngineSpec
from monolith.providers.fish_tts import FishTTS, compat
from monolith.providers.fish_tts.worker import start_worker


def test_the_worker_thread_sets_the_tts_device_before_fish_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from fish_speech.models.text2semantic import inference as t2s

    seen: list[tuple[str, str]] = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: seen.append(("set_device", str(device))))

    def init_model(checkpoint_path: str, device: str, precision: Any, compile: bool = False) -> Any:
        seen.append(("init_model", threading.current_thread().name))
        raise RuntimeError("no GPU on this machine (injected)")

    monkeypatch.setattr(t2s, "init_model", init_model)
    with pytest.raises(RuntimeError, match="no GPU on this machine"):  # raised here, not a hang
        start_worker("/nowhere", "cuda:7", torch.float32, False)
    assert seen == [("set_device", "cuda:7"), ("init_model", "fish-semantic-cuda:7")]


def test_a_broken_checkpoint_fails_the_load_instead_of_hanging(tmp_path: Path) -> None:
    import torch

    compat.install()
    with pytest.raises(Exception):  # noqa: B017 - whatever Fish raises for a missing model
        start_worker(str(tmp_path / "missing"), "cpu", torch.float32, False)


async def test_close_stops_the_worker_thread(fish_model: Path) -> None:
    provider = FishTTS(TTSConfig(model=str(fish_model), precision="float32", max_new_tokens=8),
                       EngineSpec(model_path=str(fish_model), model_id="fish-tiny"))
    await provider.load()
    assert provider.worker is not None
    thread = provider.worker.thread
    assert thread.is_alive()
    await provider.close()
    assert not thread.is_alive() and provider.engine is None


def test_torchaudio_without_list_audio_backends_gets_what_fish_needs(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    def needs_torchcodec(*_: Any, **__: Any) -> Any:
        raise RuntimeError("TorchCodec is required for load_with_torchcodec")

    modern = types.ModuleType("torchaudio")
    modern.load = needs_torchcodec  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchaudio", modern)
    compat._patch_torchaudio()
    assert modern.list_audio_backends() == ["soundfile"]  # type: ignore[attr-defined]
    wav = tmp_path / "voice.wav"
    sf.write(wav, np.zeros(1600, dtype=np.float32), 16000)
    waveform, rate = modern.load(str(wav))  # type: ignore[attr-defined]
    assert rate == 16000 and tuple(waveform.shape) == (1, 1600)


def test_an_older_torchaudio_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    older = types.ModuleType("torchaudio")

    def original_load(*_: Any) -> str:
        return "original"

    older.list_audio_backends = lambda: ["ffmpeg"]  # type: ignore[attr-defined]
    older.load = original_load  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torchaudio", older)
    compat._patch_torchaudio()
    assert older.list_audio_backends() == ["ffmpeg"] and older.load is original_load  # type: ignore[attr-defined]
