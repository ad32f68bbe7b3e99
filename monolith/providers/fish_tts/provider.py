"""Fish Speech (OpenAudio S1) in-process on the TTS group's device, through its own loaders.

Fish Speech 0.1.0 renders a whole text in one piece, so monolith streams by chunks: the voice
pipeline (and /v1/audio/speech) sends sentence-sized chunks, and each chunk's audio is yielded
as soon as it is decoded. A chunk waits its turn on the TTS device queue (scheduler.tts_queue).
The semantic model runs on its own thread, bound to the TTS device, in one of two ways:
- `[tts] max_batch = 1`: Fish's own loop (`worker.py`), one chunk at a time, compiled on CUDA;
  the chunk runs through Fish's `TTSInferenceEngine` on the device's executor;
- `max_batch` above 1: monolith's continuous-batching decoder (`batched.py`) advances up to
  that many chunks per step; each chunk's codes go through Fish's codec on the executor.
A cancelled chunk stops at the next semantic token (and frees its batch row).

Process-wide state Fish Speech sets, and what is done about it:
- On import it sets `TOKENIZERS_PARALLELISM=false` (restored) and torch inductor options (kept:
  compilation happens at warm-up, and nothing else in this process compiles; vLLM compiles in
  its own processes).
- After every `inference()` call it runs `gc.collect()`; monolith gives that module a stand-in
  `gc` whose collect does nothing (a full collection holds the GIL and stalls the event loop).
- The codec module registers an OmegaConf `eval` resolver. That cannot be undone (OmegaConf has
  no unregister); it matters only to code that resolves `${eval:...}` in its own configs.
- `seed` re-seeds torch's global RNG before each chunk. vLLM's engine runs in its own process, so
  the LLM's sampling is unaffected; nothing else in monolith's process draws from that RNG.
- Reference voices are passed as audio bytes. Fish's own `reference_id` resolves against the
  working directory and creates folders there, so it is not used."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from monolith import metrics
from monolith.config import TTSConfig
from monolith.errors import InvalidRequest
from monolith.providers.base import EngineSpec, import_names
from monolith.providers.fish_tts import compat
from monolith.providers.fish_tts.batched import BatchedWorker, ChunkHandle, start_batched_worker
from monolith.providers.fish_tts.worker import SemanticWorker, start_worker
from monolith.providers.tts import TTSProvider

log = logging.getLogger(__name__)

VOICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


class _CancelHook:
    """Fish's token loop iterates `tqdm(range(n))`; this stand-in ends the loop once the chunk
    being rendered is cancelled. The text-to-semantic worker serves one request at a time."""

    def __init__(self) -> None:
        self.current: threading.Event | None = None

    def __call__(self, iterable: Iterable[int], *args: Any, **kwargs: Any) -> Iterator[int]:
        for i in iterable:
            if self.current is not None and self.current.is_set():
                return
            yield i


_CANCEL = _CancelHook()


class FishTTS(TTSProvider):
    backend = "fish-speech"
    native_sample_rate = 44100
    required_files = (("config.json",), ("model.pth",), ("tokenizer.tiktoken",), ("special_tokens.json",), ("codec.pth",))

    def __init__(self, config: TTSConfig, spec: EngineSpec) -> None:
        super().__init__(model_id=spec.model_id, model_path=spec.model_path, runner=spec.runner)
        self.config = config
        self.device = spec.torch_device
        self.compiled = config.compile if isinstance(config.compile, bool) else self.device.startswith("cuda")
        self.engine: Any = None
        self.worker: SemanticWorker | None = None
        self.batched: BatchedWorker | None = None  # max_batch > 1
        self.references = Path(spec.model_path) / "references"
        self.active = 0
        self.cancelled = 0

    # --- loading -----------------------------------------------------------------------------

    def import_libraries(self) -> None:
        compat.install()
        saved_env = os.environ.get("TOKENIZERS_PARALLELISM")  # Fish sets it at import
        try:
            import_names("torch", "bfloat16")
            import_names("fish_speech.models.text2semantic.inference", "init_model", "generate_long")
            import_names("fish_speech.inference_engine", "TTSInferenceEngine")
            import_names("fish_speech.models.dac.inference", "load_model")
            import_names("fish_speech.utils.schema", "ServeTTSRequest", "ServeReferenceAudio")
            import_names("hydra", "compose", "initialize_config_dir")
        finally:
            _restore_env("TOKENIZERS_PARALLELISM", saved_env)

    async def load(self) -> None:
        start = time.perf_counter()
        await asyncio.to_thread(self.ensure_imported)
        self.engine = await self.runner.run(self._load_blocking)
        log.info("tts loaded", extra={"model": self.model_path, "device": self.device, "compile": self.compiled,
                                      "load_s": round(time.perf_counter() - start, 2)})

    def _load_blocking(self) -> Any:
        import fish_speech.inference_engine as fish_engine
        import fish_speech.models.text2semantic.inference as t2s
        import torch
        from fish_speech.inference_engine import TTSInferenceEngine

        t2s.tqdm = _CANCEL  # type: ignore[attr-defined]
        # Fish runs a full gc.collect() after every inference() call, i.e. every chunk: in a process
        # with vLLM's front end and every session's objects that stalls the event loop (it holds
        # the GIL). Python's own generational collection is enough.
        fish_engine.gc = _NO_FULL_COLLECT  # type: ignore[attr-defined]
        precision = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[self.config.precision]
        if self.config.max_batch > 1:
            # The batched decoder runs eagerly (its shapes change every step): no torch.compile.
            self.compiled = False
            self.batched = start_batched_worker(self.model_path, self.device, precision, self.config.max_batch,
                                                on_step=metrics.TTS_BATCH_CHUNKS.observe)
            requests: Any = None  # Fish's queue is not used: chunks go to the batched decoder
        else:
            # Fish's inductor options (set when it was imported) stay: torch.compile compiles
            # lazily, at warm-up. vLLM compiles in its own processes, and nothing else here does.
            self.worker = start_worker(self.model_path, self.device, precision, self.compiled)
            requests = self.worker.requests
        codec = self._load_codec()
        return TTSInferenceEngine(llama_queue=requests, decoder_model=codec, precision=precision,
                                  compile=self.compiled)

    def _load_codec(self) -> Any:
        folder = Path(self.model_path)
        checkpoint = folder / "codec.pth"
        if not (folder / "codec.yaml").exists():
            from fish_speech.models.dac.inference import load_model

            return load_model("modded_dac_vq", str(checkpoint), device=self.device)
        # A codec with its own hydra config beside it (the tiny test codec, or a custom one).
        import hydra
        import torch
        from hydra import compose, initialize_config_dir
        from hydra.utils import instantiate

        hydra.core.global_hydra.GlobalHydra.instance().clear()  # type: ignore[attr-defined]
        with initialize_config_dir(version_base="1.3", config_dir=str(folder.resolve())):
            codec = instantiate(compose(config_name="codec"))
        state = torch.load(checkpoint, map_location=self.device, mmap=True, weights_only=True)
        codec.load_state_dict(state.get("state_dict", state), strict=False, assign=True)
        return codec.eval().to(self.device)

    async def close(self) -> None:
        """Stop the semantic worker and release the model's memory (Fish has no close of its own)."""
        worker, self.worker, self.engine = self.worker, None, None
        batched, self.batched = self.batched, None
        for stopping in (worker, batched):
            if stopping is not None:
                stopping.stop()
                await self.runner.run(_release_memory, stopping.thread, stopping.device)

    async def warmup(self) -> None:
        # Compiled, the first chunks trace and record the decoder's graphs: do it before /ready.
        for text in ("Hi.", "Hello, this warms the decoder up.") if self.compiled else ("Hi.",):
            async for _ in self.synthesize(text, voice="default", request_id="warmup"):
                pass

    # --- voices ------------------------------------------------------------------------------

    def voices(self) -> list[str]:
        found = sorted(p.name for p in self.references.iterdir() if p.is_dir() and VOICE_ID.match(p.name)) \
            if self.references.is_dir() else []
        return ["default", *found]

    def _reference(self, voice: str) -> list[Any]:
        """Audio bytes and transcripts of a reference voice; [] for the model's own voice."""
        if voice == "default":
            return []
        if not VOICE_ID.match(voice):
            raise InvalidRequest(f"voice {voice!r} is not a valid voice id", code="unknown_voice", param="voice")
        folder = (self.references / voice).resolve()
        if folder.parent != self.references.resolve() or not folder.is_dir():
            raise InvalidRequest(f"unknown voice {voice!r}; available: {', '.join(self.voices())}",
                                 code="unknown_voice", param="voice")
        from fish_speech.utils.schema import ServeReferenceAudio

        refs = []
        for audio in sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES):
            lab = audio.with_suffix(".lab")
            text = lab.read_text(encoding="utf-8").strip() if lab.exists() else ""
            refs.append(ServeReferenceAudio(audio=audio.read_bytes(), text=text))
        if not refs:
            raise InvalidRequest(f"voice {voice!r} has no reference audio", code="unknown_voice", param="voice")
        return refs

    # --- synthesis ---------------------------------------------------------------------------

    async def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True, speed: float = 1.0,
    ) -> AsyncIterator[np.ndarray]:
        if self.engine is None:
            raise RuntimeError("Fish Speech is not loaded")
        references = await asyncio.to_thread(self._reference, voice)
        if self.batched is not None:
            audio = await self._render_batched(text, references, first_in_response)
            if audio.size:
                yield audio
            return
        cancel = threading.Event()
        self.active += 1
        try:
            audio = await self.runner.run(self._render, text, references, cancel)
        except asyncio.CancelledError:
            cancel.set()  # the executor thread ends the chunk at its next token
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
        if audio.size:
            yield audio

    def _render(self, text: str, references: list[Any], cancel: threading.Event) -> np.ndarray:
        from fish_speech.utils.schema import ServeTTSRequest

        config = self.config
        request = ServeTTSRequest(
            text=text, references=references, use_memory_cache="on", max_new_tokens=config.max_new_tokens,
            chunk_length=max(100, min(300, config.chunk_length)), top_p=config.top_p,
            repetition_penalty=config.repetition_penalty, temperature=min(1.0, config.temperature),
            seed=config.seed, format="wav", streaming=False,
        )
        _CANCEL.current = cancel
        audio = np.zeros(0, dtype=np.float32)
        try:
            for result in self.engine.inference(request):
                if result.code == "error":
                    if cancel.is_set():
                        break  # stopped before any audio: nothing to say
                    raise RuntimeError(f"Fish Speech failed: {result.error}")
                if result.code == "final":
                    audio = np.asarray(result.audio[1], dtype=np.float32).reshape(-1)
        finally:
            _CANCEL.current = None
        return np.zeros(0, dtype=np.float32) if cancel.is_set() else audio

    async def _render_batched(self, text: str, references: list[Any], first_in_response: bool) -> np.ndarray:
        """One chunk through the batched decoder: its codes, then Fish's codec on the executor."""
        assert self.batched is not None
        decoder = self.batched.decoder
        handle: ChunkHandle = await self.runner.run(
            self._submit_batched, decoder, text, references, first_in_response)
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[ChunkHandle] = loop.create_future()

        def settle(h: ChunkHandle) -> None:
            if not finished.done():
                finished.set_result(h)

        def done(h: ChunkHandle) -> None:  # on the decode thread
            loop.call_soon_threadsafe(settle, h)

        self.active += 1
        try:
            handle.add_done_callback(done)
            await finished
        except asyncio.CancelledError:
            decoder.cancel(handle)  # its row is freed at the decoder's next step
            self.cancelled += 1
            raise
        finally:
            self.active -= 1
        if handle.state == "failed":
            raise RuntimeError(f"Fish Speech failed: {handle.error}") from handle.error
        if handle.state != "done" or handle.codes is None or not handle.codes.numel():
            return np.zeros(0, dtype=np.float32)
        audio: np.ndarray = await self.runner.run(self._decode_codes, handle.codes, text)
        return audio

    def _submit_batched(self, decoder: Any, text: str, references: list[Any], first_in_response: bool) -> ChunkHandle:
        """On the executor: the reference voice's codes (Fish's own loader, cached) and the prompt."""
        prompt_tokens, prompt_texts = self.engine.load_by_hash(references, "on") if references else ([], [])
        config = self.config
        handle: ChunkHandle = decoder.submit(
            text, prompt_text=prompt_texts or None, prompt_tokens=prompt_tokens or None,
            temperature=min(1.0, config.temperature), top_p=config.top_p,
            repetition_penalty=config.repetition_penalty, max_new_tokens=config.max_new_tokens, seed=config.seed,
            first_in_response=first_in_response)
        return handle

    def _decode_codes(self, codes: Any, text: str) -> np.ndarray:
        import torch
        from fish_speech.models.text2semantic.inference import GenerateResponse

        with torch.inference_mode():
            segment = self.engine.get_audio_segment(GenerateResponse(action="sample", codes=codes, text=text))
        return np.asarray(segment, dtype=np.float32).reshape(-1)

    def batch_capacity(self) -> int:
        return self.config.max_batch

    def running_requests(self) -> int:
        return self.active


class _NoFullCollect:
    """Stands in for the `gc` module inside fish_speech.inference_engine."""

    @staticmethod
    def collect(generation: int = 2) -> int:
        return 0


_NO_FULL_COLLECT = _NoFullCollect()


def _release_memory(thread: threading.Thread, device: str) -> None:
    """On the TTS executor, after the worker was told to stop: free what the old model held."""
    import gc

    import torch

    thread.join(timeout=60)
    gc.collect()
    if device.startswith("cuda"):
        with torch.cuda.device(device):
            torch.cuda.empty_cache()


def _restore_env(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value
