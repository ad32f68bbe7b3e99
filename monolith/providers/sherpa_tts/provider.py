"""sherpa-onnx text to speech in-process: the natural TTS for CPU and edge deployments, and a
real voice where Fish Speech cannot run. VITS/Piper, Matcha and Kokoro voices (`models.py`),
phonemes from espeak-ng (`phonemes.py`), one chunk at a time on the TTS device's executor.

Cancelling a chunk stops it at its next sentence (sherpa-onnx's progress callback can end a
generation between sentences, not within one); chunks are sentence-sized, so a barge-in costs at
most the sentence being rendered. OfflineTts renders one text per call (it has no batch of
texts), so sessions share the device through the TTS queue's order."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from monolith.config import TTSConfig
from monolith.errors import InvalidRequest
from monolith.providers.base import Capabilities, EngineSpec, import_names
from monolith.providers.sherpa_tts.models import VoiceFiles, build_tts, discover_voice
from monolith.providers.sherpa_tts.phonemes import espeak_binary, phonemize
from monolith.providers.tts import TTSProvider

log = logging.getLogger(__name__)


class SherpaTTS(TTSProvider):
    backend = "sherpa-onnx"
    required_files = (("tokens.txt",), ("*.onnx",))
    capabilities = Capabilities(speed=True)

    def __init__(self, config: TTSConfig, spec: EngineSpec) -> None:
        super().__init__(model_id=spec.model_id, model_path=spec.model_path, runner=spec.runner)
        self.config = config
        self.devices = spec.devices
        self.files: VoiceFiles | None = None
        self.tts: Any = None
        self.espeak = ""
        self.native_sample_rate = 22050
        self.active = 0
        self.cancelled = 0

    def import_libraries(self) -> None:
        import_names("sherpa_onnx", "OfflineTts", "GenerationConfig")
        import_names("onnx", "load")

    async def load(self) -> None:
        await asyncio.to_thread(self.ensure_imported)
        start = time.perf_counter()
        self.espeak = espeak_binary(self.config.espeak_binary)  # before loading: a clear error first
        self.files = await asyncio.to_thread(discover_voice, Path(self.model_path))
        provider = "cuda" if self.devices else "cpu"
        self.tts = await self.runner.run(build_tts, self.files, self.config, provider)
        self.native_sample_rate = int(self.tts.sample_rate)
        log.info("tts loaded", extra={"model": self.model_path, "family": self.files.family,
                                      "sample_rate": self.native_sample_rate,
                                      "load_s": round(time.perf_counter() - start, 2)})

    async def warmup(self) -> None:
        async for _ in self.synthesize("Hi.", voice="default", request_id="warmup"):
            pass

    async def close(self) -> None:
        self.tts = None

    def voices(self) -> list[str]:
        return self.files.speakers if self.files is not None else ["default"]

    def _speaker(self, voice: str) -> int:
        speakers = self.voices()
        if voice not in speakers:
            raise InvalidRequest(f"unknown voice {voice!r}; available: {', '.join(speakers)}", code="unknown_voice",
                                 param="voice")
        return speakers.index(voice) - 1 if voice != "default" else 0

    async def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True, speed: float = 1.0,
    ) -> AsyncIterator[np.ndarray]:
        if self.tts is None or self.files is None:
            raise RuntimeError("sherpa-onnx TTS is not loaded")
        speaker = self._speaker(voice)
        voice_name = self.config.espeak_voice or self.files.espeak_voice
        phonemes = await asyncio.to_thread(phonemize, text, voice_name, self.espeak)
        if not phonemes:
            return
        cancel = threading.Event()
        self.active += 1
        try:
            audio = await self.runner.run(self._generate, text, phonemes, speaker, speed, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the executor stops at the next sentence
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
        if audio.size:
            yield audio

    def _generate(self, text: str, phonemes: list[list[int]], speaker: int, speed: float,
                  cancel: threading.Event) -> np.ndarray:
        import sherpa_onnx

        config = sherpa_onnx.GenerationConfig()
        config.sid = speaker
        config.speed = speed
        config.phoneme_codepoints = phonemes
        result = self.tts.generate(text, config, lambda samples, progress: 0 if cancel.is_set() else 1)
        audio = np.asarray(result.samples, dtype=np.float32)
        if cancel.is_set():
            return np.zeros(0, dtype=np.float32)
        if not audio.size:  # sherpa-onnx says nothing when it cannot map the phonemes
            raise RuntimeError(f"sherpa-onnx rendered no audio for {len(text)} characters of text")
        return audio

    def running_requests(self) -> int:
        return self.active
