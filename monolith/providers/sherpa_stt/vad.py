"""Voice activity per stream: sherpa-onnx's VoiceActivityDetector with Silero VAD.

It says when speech starts (after `vad_min_speech_ms`, so a cough does not count) and stops
(after `vad_silence_ms`); the voice pipeline uses the start for barge-in. It also keeps the
audio of the current utterance, which offline mode decodes. Everything here runs on the STT
executor thread (a VAD, like a recognizer stream, is not thread safe)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from monolith.config import STTConfig

RATE = 16000
WINDOW = 512  # Silero VAD's window at 16 kHz


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["started", "stopped"]
    audio_ms: float  # speech onset for started, speech end for stopped
    segment: np.ndarray | None = None  # the utterance's audio, with `stopped`


def packaged_silero_model() -> Path | None:
    """silero_vad.onnx from the `silero-vad` wheel (installed --no-deps: only the file is used)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "silero_vad.onnx"
    return path if path.is_file() else None


def resolve_vad_model(config: STTConfig, resolve: Any) -> Path:
    if config.vad_model:
        path = Path(resolve(config.vad_model))
        if not path.is_file():
            raise FileNotFoundError(f"stt.vad_model {path} does not exist")
        return path
    packaged = packaged_silero_model()
    if packaged is None:
        raise FileNotFoundError(
            "no VAD model: set stt.vad_model to a Silero VAD .onnx file, or `pip install --no-deps silero-vad`"
        )
    return packaged


class StreamVad:
    def __init__(self, model: Path, config: STTConfig) -> None:
        import sherpa_onnx

        vad_config = sherpa_onnx.VadModelConfig()
        vad_config.silero_vad.model = str(model)
        vad_config.silero_vad.threshold = config.vad_threshold
        vad_config.silero_vad.min_speech_duration = config.vad_min_speech_ms / 1000
        vad_config.silero_vad.min_silence_duration = config.vad_silence_ms / 1000
        vad_config.silero_vad.max_speech_duration = config.max_utterance_s
        vad_config.sample_rate = RATE
        vad_config.num_threads = 1
        self.vad = sherpa_onnx.VoiceActivityDetector(vad_config, buffer_size_in_seconds=config.max_utterance_s + 10)
        self.samples_seen = 0
        self.in_speech = False
        self.onset_ms = 0.0

    @property
    def position_ms(self) -> float:
        return self.samples_seen * 1000 / RATE

    def accept(self, samples: np.ndarray) -> list[VadEvent]:
        # One Silero window at a time: fed a long buffer at once, the detector reports speech
        # state only for its end and can miss whole utterances.
        events: list[VadEvent] = []
        for i in range(0, samples.size, WINDOW):
            events.extend(self._accept_window(samples[i : i + WINDOW]))
        return events

    def _accept_window(self, samples: np.ndarray) -> list[VadEvent]:
        self.vad.accept_waveform(samples)
        self.samples_seen += samples.size
        events: list[VadEvent] = []
        detected = bool(self.vad.is_speech_detected())
        if detected and not self.in_speech:
            current = self.vad.current_segment
            start = current.start if current is not None and len(current.samples) else self.samples_seen
            self.in_speech, self.onset_ms = True, start * 1000 / RATE
            events.append(VadEvent("started", self.onset_ms))
        while not self.vad.empty():
            segment = self.vad.front
            audio = np.asarray(segment.samples, dtype=np.float32)
            end_ms = (segment.start + audio.size) * 1000 / RATE
            self.vad.pop()
            if not self.in_speech:  # a short segment that began and ended within this call
                events.append(VadEvent("started", segment.start * 1000 / RATE))
            self.in_speech = bool(self.vad.is_speech_detected())
            events.append(VadEvent("stopped", end_ms, audio))
            if self.in_speech:  # max_speech_duration split a long utterance: the next one runs on
                self.onset_ms = end_ms
                events.append(VadEvent("started", end_ms))
        return events

    def reset(self) -> None:
        """As new: no audio seen (a detector taken again from the pool)."""
        self.vad.reset()
        self.samples_seen, self.in_speech, self.onset_ms = 0, False, 0.0

    def current_audio(self) -> np.ndarray:
        """The utterance so far (offline partials re-decode it)."""
        current = self.vad.current_segment
        if current is None or not self.in_speech:
            return np.zeros(0, dtype=np.float32)
        return np.asarray(current.samples, dtype=np.float32)

    def finish(self) -> VadEvent | None:
        """End the utterance now (client commit): its audio, if speech was going on."""
        audio = self.current_audio()
        was_speaking = self.in_speech
        self.vad.reset()
        self.in_speech = False
        if not was_speaking:
            return None
        return VadEvent("stopped", self.position_ms, audio)


class VadPool:
    """Detectors of closed sessions, kept for the next ones. sherpa-onnx loads the Silero model
    afresh for every VoiceActivityDetector (about 40 ms on 2 cores), and on the STT executor that
    would stall every live session's decoding whenever a session opens."""

    def __init__(self, model: Path, config: STTConfig) -> None:
        self.model = model
        self.config = config
        self._free: list[StreamVad] = []

    def take(self) -> StreamVad:
        """On the STT executor (it resets a detector)."""
        if self._free:
            vad = self._free.pop()
            vad.reset()
            return vad
        return StreamVad(self.model, self.config)

    def give_back(self, vad: StreamVad) -> None:
        """From any thread, once nothing will touch `vad` again; `take` resets it."""
        self._free.append(vad)

    @property
    def idle(self) -> int:
        return len(self._free)
