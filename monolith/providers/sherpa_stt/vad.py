"""Voice activity per stream: sherpa-onnx's VoiceActivityDetector with Silero VAD.

It says when speech starts (after `vad_min_speech_ms`, so a cough does not count) and when the
turn ends (after `vad_silence_ms`, or what the stream's EndOfTurn asks for), and, with pauses,
when the user pauses and resumes; the voice pipeline uses the start for barge-in. It also keeps
the audio of the current turn, which offline mode decodes. Everything here runs on the STT
executor thread (a VAD, like a recognizer stream, is not thread safe)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from monolith.config import STTConfig
from monolith.turn_end import EndOfTurn

RATE = 16000
WINDOW = 512  # Silero VAD's window at 16 kHz


@dataclass(frozen=True)
class VadEvent:
    kind: Literal["started", "stopped", "paused", "resumed"]
    audio_ms: float  # speech onset for started and resumed, speech end for stopped and paused
    segment: np.ndarray | None = None  # the turn's audio so far, with stopped and paused


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
    """Silero cuts speech into segments; this merges them into turns. Without pauses (no
    EndOfTurn, or one without pause_ms) Silero runs with the turn's own silence and a segment is
    a turn, as it always was. With pauses Silero runs with the pause's silence: a segment's end
    is a pause (the turn's audio so far comes with it), speech before the turn's silence has run
    out resumes the turn, and the turn ends once the silence since its last speech reaches what
    `EndOfTurn.silence_ms` asks for the text so far (`set_text`)."""

    def __init__(self, model: Path, config: STTConfig, silence_ms: float | None = None) -> None:
        import sherpa_onnx

        self.silero_silence_ms = silence_ms if silence_ms is not None else config.vad_silence_ms
        vad_config = sherpa_onnx.VadModelConfig()
        vad_config.silero_vad.model = str(model)
        vad_config.silero_vad.threshold = config.vad_threshold
        vad_config.silero_vad.min_speech_duration = config.vad_min_speech_ms / 1000
        vad_config.silero_vad.min_silence_duration = self.silero_silence_ms / 1000
        vad_config.silero_vad.max_speech_duration = config.max_utterance_s
        vad_config.sample_rate = RATE
        vad_config.num_threads = 1
        self.vad = sherpa_onnx.VoiceActivityDetector(vad_config, buffer_size_in_seconds=config.max_utterance_s + 10)
        self.default_silence_ms = config.vad_silence_ms
        self.max_turn_samples = int(config.max_utterance_s * RATE)
        self.end_of_turn: EndOfTurn | None = None
        self.samples_seen = 0
        self.in_speech = False  # Silero hears speech now
        self.onset_ms = 0.0
        self._clear_turn()

    def _clear_turn(self) -> None:
        self.turn: list[np.ndarray] = []  # the turn's segments, with the pauses between them as zeros
        self.turn_end = 0  # sample just past the turn's last segment
        self.waiting = False  # a pause: the turn's silence is running
        self.text = ""

    def configure(self, end_of_turn: EndOfTurn | None) -> None:
        self.end_of_turn = end_of_turn

    @property
    def pauses(self) -> bool:
        return self.end_of_turn is not None and self.end_of_turn.pause_ms is not None

    @property
    def in_turn(self) -> bool:
        return self.in_speech or self.waiting

    @property
    def required_silence_ms(self) -> float:
        if self.end_of_turn is None:
            return self.default_silence_ms
        return self.end_of_turn.silence_ms(self.text or None, self.default_silence_ms)

    def set_text(self, text: str) -> None:
        """The transcript of the turn so far: it decides the turn's silence (adaptive rule)."""
        self.text = text

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
            self.in_speech = True
            events.append(self._speech_from(start))
        while not self.vad.empty():
            segment = self.vad.front
            audio = np.asarray(segment.samples, dtype=np.float32)
            self.vad.pop()
            if not self.in_speech:  # a short segment that began and ended within this call
                events.append(self._speech_from(segment.start))
            self.in_speech = bool(self.vad.is_speech_detected())
            events.extend(self._segment_ended(segment.start, audio))
        if self.waiting and self.position_ms - self.turn_end * 1000 / RATE >= self.required_silence_ms:
            events.append(self._end_turn())
        return events

    def _speech_from(self, start: int) -> VadEvent:
        if self.waiting:
            self.waiting = False
            return VadEvent("resumed", start * 1000 / RATE)
        self._clear_turn()
        self.onset_ms = start * 1000 / RATE
        return VadEvent("started", self.onset_ms)

    def _segment_ended(self, start: int, audio: np.ndarray) -> list[VadEvent]:
        if self.turn:
            self.turn.append(np.zeros(max(0, start - self.turn_end), dtype=np.float32))
        self.turn.append(audio)
        self.turn_end = start + audio.size
        end_ms = self.turn_end * 1000 / RATE
        if self.in_speech:  # max_speech_duration split a long utterance: the next one runs on
            ended = self._end_turn()
            self.onset_ms = end_ms
            return [ended, VadEvent("started", end_ms)]
        long_enough = sum(a.size for a in self.turn) >= self.max_turn_samples
        if not self.pauses or long_enough or self.required_silence_ms <= self.silero_silence_ms:
            return [self._end_turn()]
        self.waiting = True
        return [VadEvent("paused", end_ms, self.turn_audio())]

    def _end_turn(self) -> VadEvent:
        ended = VadEvent("stopped", self.turn_end * 1000 / RATE, self.turn_audio())
        self._clear_turn()
        return ended

    def turn_audio(self) -> np.ndarray:
        return np.concatenate(self.turn) if self.turn else np.zeros(0, dtype=np.float32)

    def reset(self) -> None:
        """As new: no audio seen (a detector taken again from the pool)."""
        self.vad.reset()
        self.samples_seen, self.in_speech, self.onset_ms = 0, False, 0.0
        self.end_of_turn = None
        self._clear_turn()

    def current_audio(self) -> np.ndarray:
        """The turn so far, the segment under way included (offline partials re-decode it)."""
        current = self.vad.current_segment
        if current is None or not self.in_speech:
            return self.turn_audio()
        audio = np.asarray(current.samples, dtype=np.float32)
        if not self.turn:
            return audio
        return np.concatenate([*self.turn, np.zeros(max(0, current.start - self.turn_end), dtype=np.float32), audio])

    def finish(self) -> VadEvent | None:
        """End the turn now (client commit): its audio, if speech was going on."""
        audio = self.current_audio()
        was_speaking = self.in_turn
        self.vad.reset()
        self.in_speech = False
        self._clear_turn()
        if not was_speaking:
            return None
        return VadEvent("stopped", self.position_ms, audio)


class VadPool:
    """Detectors of closed sessions, kept for the next ones. sherpa-onnx loads the Silero model
    afresh for every VoiceActivityDetector (about 40 ms on 2 cores), and on the STT executor that
    would stall every live session's decoding whenever a session opens. Kept by Silero's silence
    (a session with pauses runs Silero with the pause's)."""

    def __init__(self, model: Path, config: STTConfig) -> None:
        self.model = model
        self.config = config
        self._free: dict[float, list[StreamVad]] = {}

    def take(self, end_of_turn: EndOfTurn | None = None) -> StreamVad:
        """On the STT executor (it resets a detector)."""
        silence_ms = self.config.vad_silence_ms
        if end_of_turn is not None and end_of_turn.pause_ms is not None:
            silence_ms = min(end_of_turn.pause_ms, silence_ms)
        free = self._free.get(silence_ms)
        vad = free.pop() if free else None
        if vad is not None:
            vad.reset()
        else:
            vad = StreamVad(self.model, self.config, silence_ms)
        vad.configure(end_of_turn)
        return vad

    def give_back(self, vad: StreamVad) -> None:
        """From any thread, once nothing will touch `vad` again; `take` resets it."""
        self._free.setdefault(vad.silero_silence_ms, []).append(vad)

    @property
    def idle(self) -> int:
        return sum(len(v) for v in self._free.values())
