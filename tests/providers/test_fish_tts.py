"""The Fish Speech provider through Fish Speech's own loaders, with a tiny random checkpoint."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio
import soundfile as sf

from monolith.config import TTSConfig
from monolith.errors import InvalidRequest
from monolith.providers.base import EngineSpec
from monolith.providers.fish_tts import FishTTS
from monolith.providers.llm import ChatMessage, SamplingOptions

from .stt_fixtures import speech

pytestmark = pytest.mark.asyncio(loop_scope="session")


def fish(folder: Path, **config: object) -> FishTTS:
    settings = TTSConfig(**{"model": str(folder), "precision": "float32", "max_new_tokens": 24, **config})  # type: ignore[arg-type]
    return FishTTS(settings, EngineSpec(model_path=str(folder), model_id=folder.name))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def loaded(fish_model: Path) -> FishTTS:
    provider = fish(fish_model)
    await provider.load()
    await provider.warmup()
    return provider


async def test_loads_with_fish_speechs_loaders_and_renders_44k_float32(loaded: FishTTS) -> None:
    chunks = [c async for c in loaded.synthesize("Hello there.", voice="default", request_id="t1")]
    assert len(chunks) == 1 and chunks[0].dtype == np.float32 and chunks[0].ndim == 1
    assert chunks[0].size % 2048 == 0 and chunks[0].size >= 2048  # 2048 samples per semantic token
    assert loaded.native_sample_rate == 44100 and loaded.voices() == ["default"]


async def test_pcm16_at_the_output_rate(loaded: FishTTS) -> None:
    native = [c async for c in loaded.synthesize("Hello there.", voice="default", request_id="n")]
    pcm = b"".join([p async for p in loaded.stream_pcm16("Hello there.", voice="default", request_id="p", sample_rate=24000)])
    seconds = native[0].size / 44100
    assert len(pcm) % 2 == 0 and abs(len(pcm) / 2 / 24000 - seconds) < 0.35  # random length, same scale


async def test_cancel_stops_the_running_chunk_at_the_next_token(fish_model: Path) -> None:
    provider = fish(fish_model, max_new_tokens=400)
    await provider.load()
    started = time.perf_counter()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    audio = await asyncio.to_thread(provider._render, "A long sentence to render, please.", [], stop)
    assert audio.size == 0 and time.perf_counter() - started < 1.5  # 400 tokens would take several seconds

    task = asyncio.create_task(anext(provider.synthesize("Another long one.", voice="default", request_id="x")))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert provider.cancelled == 1
    for _ in range(100):
        if provider.running_requests() == 0:
            break
        await asyncio.sleep(0.02)
    assert provider.running_requests() == 0


async def test_reference_voices_come_from_the_references_folder_and_ids_cannot_escape(fish_model: Path, tmp_path: Path) -> None:
    model = tmp_path / "model"
    shutil.copytree(fish_model, model)
    alice = model / "references" / "alice"
    alice.mkdir(parents=True)
    sf.write(alice / "sample.wav", speech()[:32000], 16000)
    (alice / "sample.lab").write_text("Hello, what is the weather like today?", encoding="utf-8")
    (model / "references" / "empty").mkdir()
    provider = fish(model)
    await provider.load()
    assert provider.voices() == ["default", "alice", "empty"]
    cloned = [c async for c in provider.synthesize("Hi.", voice="alice", request_id="v")]
    assert cloned and cloned[0].size > 0
    for bad in ("../references/alice", "bob", "/etc", "empty", ".hidden"):
        with pytest.raises(InvalidRequest):
            [c async for c in provider.synthesize("Hi.", voice=bad, request_id="bad")]


LOAD_IN_A_FRESH_PROCESS = """
import asyncio, os, sys
from pathlib import Path
os.environ["TOKENIZERS_PARALLELISM"] = "true"
from monolith.config import TTSConfig
from monolith.providers.base import EngineSpec
from monolith.providers.fish_tts import FishTTS
assert "fish_speech" not in sys.modules  # imported lazily, by load()
folder = sys.argv[1]
provider = FishTTS(TTSConfig(model=folder, precision="float32", max_new_tokens=24),
                   EngineSpec(model_path=folder, model_id=Path(folder).name))
asyncio.run(provider.load())
assert "fish_speech.models.text2semantic.inference" in sys.modules
print("TOKENIZERS_PARALLELISM=" + os.environ["TOKENIZERS_PARALLELISM"])
"""


async def test_loading_restores_the_environment_fish_speech_changes_on_import(fish_model: Path) -> None:
    # In a fresh interpreter: in this one Fish Speech may be imported already, and importing it
    # is what sets TOKENIZERS_PARALLELISM=false.
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", LOAD_IN_A_FRESH_PROCESS, str(fish_model)], capture_output=True,
        text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TOKENIZERS_PARALLELISM=true" in done.stdout.splitlines()


async def test_fish_speech_and_vllm_in_one_process(loaded: FishTTS, llama_engine: object) -> None:
    from monolith.providers.vllm_llm import VLLMProvider

    assert isinstance(llama_engine, VLLMProvider)
    text = "".join([c.text async for c in llama_engine.stream_chat([ChatMessage("user", "Hi")], SamplingOptions(max_tokens=8), request_id="both")])
    audio = [c async for c in loaded.synthesize("Hello there.", voice="default", request_id="both")]
    assert isinstance(text, str) and audio[0].size > 0


async def test_first_chunk_first_with_three_sessions_on_the_real_engine(tiny_root: Path) -> None:
    from monolith.registry import Registry
    from monolith.scheduler.placement import Inventory, build_plan

    from ..conftest import load_tiny

    settings = load_tiny(tiny_root, {"MONOLITH_TTS__PROVIDER": '"fish-speech"', "MONOLITH_RAG__ENABLED": "false"})
    registry = Registry(settings, build_plan(settings, Inventory()))
    await registry.load_all()
    assert registry.health()["tts"]["provider"] == "fish-speech"
    device = registry.tts.device

    async def chunk(label: str, first: bool) -> None:
        async for _ in registry.tts.stream_pcm16("Hello there.", voice="default", request_id=label,
                                                 sample_rate=24000, first_in_response=first):
            pass

    started_before = len(device.started)
    a = [asyncio.create_task(chunk(f"A-{i}", i == 0)) for i in range(3)]  # A's answer: three chunks at once
    while len(device.started) < started_before + 2:  # A-0 done, A-1 rendering, A-2 waiting
        await asyncio.sleep(0.005)
    b = asyncio.create_task(chunk("B-0", True))
    await asyncio.sleep(0.01)
    c = asyncio.create_task(chunk("C-0", True))
    await asyncio.gather(*a, b, c)
    assert list(device.started)[started_before:] == ["A-0", "A-1", "B-0", "C-0", "A-2"]
    await registry.close()
