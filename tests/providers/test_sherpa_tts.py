"""The sherpa-onnx TTS backend with a real Piper voice: its voice, its errors, its cancellation."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from monolith.config import TTSConfig
from monolith.providers.base import EngineSpec
from monolith.providers.onnx_files import ModelFilesError
from monolith.providers.sherpa_tts import SherpaTTS
from monolith.providers.sherpa_tts.models import discover_voice
from monolith.providers.sherpa_tts.phonemes import PhonemizerMissing

pytestmark = pytest.mark.engine


def piper(speech_root: Path, **config: object) -> SherpaTTS:
    folder = next((speech_root / "tts").iterdir())
    settings = TTSConfig(**{"provider": "sherpa-onnx", "model": str(folder), "noise_scale": 0.0,  # type: ignore[arg-type]
                            "noise_scale_w": 0.0, **config})
    return SherpaTTS(settings, EngineSpec(model_path=str(folder), model_id=folder.name))


async def test_a_piper_voice_speaks_at_its_own_rate(speech_root: Path) -> None:
    tts = piper(speech_root)
    await tts.load()
    assert tts.native_sample_rate == 22050 and tts.voices() == ["default"]
    assert discover_voice(Path(tts.model_path)).family == "vits"
    audio = [a async for a in tts.synthesize("Hello there, how are you?", voice="default", request_id="r")]
    seconds = sum(a.size for a in audio) / 22050
    assert 1.0 < seconds < 3.0 and np.abs(np.concatenate(audio)).max() > 0.05
    again = [a async for a in tts.synthesize("Hello there, how are you?", voice="default", request_id="r2")]
    assert np.array_equal(np.concatenate(audio), np.concatenate(again))  # noise 0: the same audio


async def test_cancelling_stops_a_chunk_between_sentences_and_frees_it(speech_root: Path) -> None:
    tts = piper(speech_root)
    await tts.load()
    text = " ".join(f"This is sentence number {i}, spoken slowly and at length." for i in range(12))
    started = time.perf_counter()
    alone = [a async for a in tts.synthesize(text, voice="default", request_id="whole")]
    whole_s = time.perf_counter() - started
    task = asyncio.create_task(_drain(tts.synthesize(text, voice="default", request_id="cut")))
    await asyncio.sleep(whole_s / 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(200):  # the executor finishes the sentence it was rendering, then stops
        if tts.running_requests() == 0:
            break
        await asyncio.sleep(0.01)
    assert tts.running_requests() == 0 and tts.cancelled == 1
    assert alone


async def _drain(stream: object) -> None:
    async for _ in stream:  # type: ignore[attr-defined]
        pass


async def test_a_missing_espeak_ng_is_a_clear_load_error(speech_root: Path) -> None:
    tts = piper(speech_root, espeak_binary="espeak-ng-not-installed")
    with pytest.raises(PhonemizerMissing, match="apt-get install espeak-ng"):
        await tts.load()


async def test_a_voice_without_its_metadata_is_refused_before_sherpa_sees_it(speech_root: Path, tmp_path: Path) -> None:
    import onnx

    folder = next((speech_root / "tts").iterdir())
    broken = tmp_path / "no-metadata"
    shutil.copytree(folder, broken)
    model = onnx.load(str(broken / "model.onnx"))
    del model.metadata_props[:]  # as the Piper wheel ships it: sherpa-onnx would exit(255) on it
    onnx.save(model, str(broken / "model.onnx"))
    with pytest.raises(ModelFilesError, match="needs the metadata sample_rate, n_speakers, language, comment"):
        discover_voice(broken)
    (broken / "tokens.txt").unlink()
    with pytest.raises(ModelFilesError, match="tokens.txt does not exist"):
        discover_voice(broken)
