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
    """Silero cuts speech into segments; this merges them into turns.

    Without pauses Silero runs with the turn's silence (`vad_silence_ms`) and its minimum speech
    (`vad_min_speech_ms`), and a segment is a turn, as it always was. With pauses (`pause_ms`)
    Silero runs with the pause's silence and a one-window minimum speech, so speech that comes
    back is seen within a window or two, as Silero itself sees it within a segment; a segment
    counts once it has lasted `vad_min_speech_ms` (shorter ones are noise). A segment's end is a
    pause (the turn's audio so far comes with it), speech before the turn's silence has run out
    resumes the turn, and the turn ends once the silence since its last speech reaches what
    `EndOfTurn.silence_ms` asks for the text so far (`set_text`)."""

    def __init__(self, model: Path, config: STTConfig, pause_ms: float | None = None) -> None:
        import sherpa_onnx

        self.pause_ms = pause_ms
        self.silero_silence_ms = min(pause_ms, config.vad_silence_ms) if pause_ms else config.vad_silence_ms
        vad_config = sherpa_onnx.VadModelConfig()
        vad_config.silero_vad.model = str(model)
        vad_config.silero_vad.threshold = config.vad_threshold
        vad_config.silero_vad.min_speech_duration = WINDOW / RATE if pause_ms else config.vad_min_speech_ms / 1000
        vad_config.silero_vad.min_silence_duration = self.silero_silence_ms / 1000
        vad_config.silero_vad.max_speech_duration = config.max_utterance_s
        vad_config.sample_rate = RATE
        vad_config.num_threads = 1
        self.vad = sherpa_onnx.VoiceActivityDetector(vad_config, buffer_size_in_seconds=config.max_utterance_s + 10)
        self.min_speech = int(config.vad_min_speech_ms * RATE / 1000) if pause_ms else 0
        self.default_silence_ms = config.vad_silence_ms
        self.max_turn_samples = int(config.max_utterance_s * RATE)
        self.end_of_turn: EndOfTurn | None = None
        self.samples_seen = 0
        self.silero_speech = False  # Silero hears speech now
        self.counted = False  # ...and it has lasted long enough to count
        self.segment_start = self.detected_at = 0
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
        return self.pause_ms is not None

    @property
    def in_speech(self) -> bool:
        return self.silero_speech and self.counted

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
        if self.vad.is_speech_detected() and not self.silero_speech:
            current = self.vad.current_segment
            start = current.start if current is not None and len(current.samples) else self.samples_seen
            self.silero_speech, self.counted, self.segment_start = True, False, start
            self.detected_at = self.samples_seen - samples.size  # Silero heard a window of it
        if self.silero_speech and not self.counted and self.samples_seen - self.detected_at >= self.min_speech:
            self.counted = True
            events.append(self._speech_from(self.segment_start))
        while not self.vad.empty():
            segment = self.vad.front
            audio = np.asarray(segment.samples, dtype=np.float32)
            self.vad.pop()
            if not self.silero_speech:  # a short segment that began and ended within this call
                self.counted = False
            self.silero_speech = bool(self.vad.is_speech_detected())
            if not self.counted:
                if audio.size < self.min_speech:
                    continue  # too short to be speech
                events.append(self._speech_from(segment.start))
            self.counted = self.silero_speech  # a split's next segment runs on, counted
            events.extend(self._segment_ended(segment.start, audio))
        if self.waiting and not self.silero_speech and self._silence_ms() >= self.required_silence_ms:
            events.append(self._end_turn())
        return events

    def _silence_ms(self) -> float:
        return (self.samples_seen - self.turn_end) * 1000 / RATE

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
        if self.silero_speech:  # max_speech_duration split a long utterance: the next one runs on
            ended = self._end_turn()
            self.onset_ms = end_ms
            return [ended, VadEvent("started", end_ms)]
        long_enough = sum(a.size for a in self.turn) >= self.max_turn_samples
        if not self.pauses or long_enough or self._silence_ms() >= self.required_silence_ms:
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
        self.samples_seen, self.silero_speech, self.counted, self.onset_ms = 0, False, False, 0.0
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
        self.silero_speech = self.counted = False
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
        self._free: dict[float | None, list[StreamVad]] = {}  # by pause_ms

    def take(self, end_of_turn: EndOfTurn | None = None) -> StreamVad:
        """On the STT executor (it resets a detector)."""
        pause_ms = end_of_turn.pause_ms if end_of_turn is not None else None
        free = self._free.get(pause_ms)
        if free:
            vad = free.pop()
            vad.reset()
        else:
            vad = StreamVad(self.model, self.config, pause_ms)
        vad.configure(end_of_turn)
        return vad

    def give_back(self, vad: StreamVad) -> None:
        """From any thread, once nothing will touch `vad` again; `take` resets it."""
        self._free.setdefault(vad.pause_ms, []).append(vad)

    @property
    def idle(self) -> int:
        return sum(len(v) for v in self._free.values())
