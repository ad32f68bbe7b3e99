"""sherpa-onnx speech recognition in-process: one recognizer, one stream per session, one
batched decode loop, Silero VAD per stream. Streaming (OnlineRecognizer) or VAD-segmented
offline (OfflineRecognizer) mode, chosen by the model."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from monolith.config import STTConfig
from monolith.providers.base import Capabilities, EngineSpec, import_names
from monolith.providers.sherpa_stt.engines import Engine, OfflineEngine, OnlineEngine, Resampler
from monolith.providers.sherpa_stt.live import DecodeLoop
from monolith.providers.sherpa_stt.models import ModelFiles, build_offline, build_online, discover, probe_cuda_provider
from monolith.providers.sherpa_stt.segments import read_symbols
from monolith.providers.sherpa_stt.vad import RATE, resolve_vad_model
from monolith.providers.stt import Segment, STTProvider, STTStream
from monolith.text import join_texts
from monolith.turn_end import EndOfTurn

log = logging.getLogger(__name__)


class SherpaSTT(STTProvider):
    backend = "sherpa-onnx"
    required_files = (("tokens.txt",), ("*.onnx", "*.ort"))
    capabilities = Capabilities(live_streams=True, batching=True)

    def __init__(self, config: STTConfig, spec: EngineSpec) -> None:
        super().__init__(model_id=spec.model_id, model_path=spec.model_path, runner=spec.runner)
        self.config = config
        self.spec = spec
        self.devices = spec.devices
        self.files: ModelFiles | None = None
        self.engine: Engine | None = None
        self.loop: DecodeLoop | None = None
        self.onnx_provider = "cpu"
        self._warnings: list[str] = []

    @property
    def mode(self) -> str:
        return self.files.mode if self.files is not None else self.config.mode

    def _placement(self) -> tuple[str, int]:
        wanted = self.config.onnx_provider
        if wanted == "auto":
            wanted = "cuda" if self.devices else "cpu"
        device = self.devices[0] if self.devices else 0
        if wanted == "cuda":
            # The PyPI wheel would log "Fallback to cpu!" and carry on, and a CUDA build made for
            # another CUDA fails inside onnxruntime: check first, say it where people look.
            probe = probe_cuda_provider()
            if not probe.usable:
                self._warnings.append(probe.describe(device))
                return "cpu", device
        return wanted, device

    def _load_blocking(self) -> Engine:
        resolve = self.spec.resolve
        vad_model = resolve_vad_model(self.config, resolve)
        if self.config.hotwords_file:  # relative to config.toml, like every other path
            hotwords = Path(resolve(self.config.hotwords_file))
            if not hotwords.is_file():
                raise FileNotFoundError(f"stt.hotwords_file {hotwords} does not exist")
            if self.config.decoding_method != "modified_beam_search":
                raise ValueError("stt.hotwords_file needs stt.decoding_method = \"modified_beam_search\"")
            self.config = self.config.model_copy(update={"hotwords_file": str(hotwords)})
        self.files = discover(Path(self.model_path), self.config)
        provider, device = self._placement()
        self.onnx_provider = provider
        symbols = read_symbols(self.files.tokens)
        if self.files.mode == "streaming":
            return OnlineEngine(build_online(self.files, self.config, provider, device), self.config, vad_model,
                                symbols)
        if provider == "cuda" and device != 0:
            self._warnings.append(
                f"sherpa-onnx's OfflineRecognizer takes no device index: it runs on the first visible GPU, "
                f"not cuda:{device}"
            )
        return OfflineEngine(build_offline(self.files, self.config, provider), self.config, vad_model, symbols)

    def import_libraries(self) -> None:
        import_names("sherpa_onnx", "OnlineRecognizer", "OfflineRecognizer", "VoiceActivityDetector")
        import_names("onnx", "load")
        import_names("soxr", "ResampleStream")

    async def load(self) -> None:
        start = time.perf_counter()
        await asyncio.to_thread(self.ensure_imported)
        self.engine = await self.runner.run(self._load_blocking)
        self.loop = DecodeLoop(self.engine, self.runner, self.config.decode_interval_ms / 1000)
        self.loop.start()
        assert self.files is not None
        log.info(
            "stt loaded",
            extra={"model": self.model_path, "mode": self.files.mode, "model_type": self.files.model_type,
                   "onnx_provider": self.onnx_provider, "load_s": round(time.perf_counter() - start, 3)},
        )

    async def warmup(self) -> None:
        await self.transcribe(np.zeros(RATE // 2, dtype=np.float32), RATE)

    async def close(self) -> None:
        if self.loop is not None:
            await self.loop.stop()

    def _live(self) -> DecodeLoop:
        if self.loop is None:
            raise RuntimeError("STT is not loaded")
        return self.loop

    async def open_stream(
        self, *, sample_rate: int, request_id: str, end_of_turn: EndOfTurn | None = None
    ) -> STTStream:
        return await self._live().open(sample_rate, request_id, end_of_turn)

    async def transcribe_stream(self, samples: np.ndarray, sample_rate: int) -> AsyncIterator[str]:
        said = ""
        async for segment in self.transcribe_segments(samples, sample_rate):
            joined = join_texts([said, segment.text])
            delta, said = joined[len(said) :], joined
            yield delta

    async def transcribe_segments(self, samples: np.ndarray, sample_rate: int) -> AsyncIterator[Segment]:
        audio = await asyncio.to_thread(Resampler(sample_rate), samples, True)
        async for segment in self._live().transcribe(audio):
            yield segment

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        return "".join([delta async for delta in self.transcribe_stream(samples, sample_rate)])

    def live_streams(self) -> int:
        return len(self.loop.streams) if self.loop is not None else 0

    def health_warnings(self) -> list[str]:
        return list(self._warnings)
