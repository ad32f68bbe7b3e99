"""The executor side: one recognizer for every session, decoded in batches.

`OnlineEngine` (streaming models) feeds each stream's new audio to its sherpa-onnx stream and
decodes every ready stream in one `decode_streams` call. `OfflineEngine` (non-streaming models)
lets the VAD cut utterances; partials re-decode the growing utterance every
`offline_partial_interval_ms`, finals decode the whole utterance, and all of them, across
sessions, go through one `decode_streams` call per step.

Every method here blocks and touches sherpa-onnx objects that are not thread safe: they run
only on the STT executor, one call at a time (the decode loop's lock sees to it)."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from monolith import metrics
from monolith.config import STTConfig
from monolith.providers.sherpa_stt.segments import Speech, segment_of
from monolith.providers.sherpa_stt.vad import RATE, StreamVad, VadEvent, VadPool
from monolith.providers.stt import Segment, STTEvent, STTEventKind
from monolith.turn_end import EndOfTurn

# Zeros fed after a client's commit so a streaming model's last chunk (decode_chunk_len plus
# its right context) is complete and decoded.
FLUSH_PADDING_S = 0.8
SLICE = int(0.32 * RATE)  # about one streaming-model chunk


class Resampler:
    """Client rate -> 16 kHz (the VAD's rate; sherpa-onnx resamples on to the model's own)."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self._stream: Any = None
        if rate != RATE:
            import soxr

            self._stream = soxr.ResampleStream(rate, RATE, 1, dtype="float32")

    def __call__(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return np.asarray(samples, dtype=np.float32)
        out: np.ndarray = self._stream.resample_chunk(np.asarray(samples, dtype=np.float32), last=last)
        return out


@dataclass
class StreamState:
    """What the executor keeps per voice session."""

    resample: Resampler
    vad: StreamVad
    stream: Any = None  # sherpa_onnx.OnlineStream in streaming mode
    samples: int = 0  # at 16 kHz, since the stream opened
    last_text: str = ""
    last_partial_at: int = 0
    last_stop_ms: float = 0.0  # where the VAD last heard speech end
    heard_speech: bool = False  # the VAD heard speech in the current utterance
    pause_text: tuple[int, str] | None = None  # offline: the turn's text at its pause, by audio length

    @property
    def position_ms(self) -> float:
        return self.samples * 1000 / RATE


VAD_KINDS: dict[str, STTEventKind] = {"started": "speech_started", "stopped": "speech_stopped", "resumed": "resumed"}


def _vad_event(ev: VadEvent) -> STTEvent:
    return STTEvent(VAD_KINDS[ev.kind], audio_ms=ev.audio_ms)


@dataclass
class Engine:
    recognizer: Any
    config: STTConfig
    vad_model: Path
    symbols: dict[str, int] = field(default_factory=dict)  # tokens.txt: symbol -> id
    batches: int = 0
    decoded_streams: int = 0
    decode_seconds: float = 0.0  # inside the recognizer's decode calls (VAD and features not counted)
    vads: VadPool = field(init=False)

    def __post_init__(self) -> None:
        self.vads = VadPool(self.vad_model, self.config)

    def new_state(self, sample_rate: int, end_of_turn: EndOfTurn | None = None) -> StreamState:
        raise NotImplementedError

    def _counted(self, batch: int, started: float) -> None:
        """One decode call of `batch` streams, begun at `started`: metrics and counters."""
        seconds = time.perf_counter() - started
        metrics.STT_DECODE_SECONDS.observe(seconds)
        metrics.STT_BATCH_STREAMS.observe(batch)
        self.decode_seconds += seconds
        self.batches += 1
        self.decoded_streams += batch

    def release(self, state: StreamState) -> None:
        """The session closed: its detector goes back to the pool (no engine call uses it again)."""
        self.vads.give_back(state.vad)

    def step(self, batch: Sequence[tuple[StreamState, np.ndarray]]) -> list[list[STTEvent]]:
        raise NotImplementedError

    def flush(self, state: StreamState) -> list[STTEvent]:
        raise NotImplementedError

    def transcription(self, samples: np.ndarray) -> Transcription:
        """Whole audio at 16 kHz, decoded a piece per `advance` call (live streams go between)."""
        raise NotImplementedError


class Transcription:
    def advance(self) -> list[Segment] | None:
        """Decode the next piece; the utterances it completed, or None when all is done."""
        raise NotImplementedError


class OnlineEngine(Engine):
    def new_state(self, sample_rate: int, end_of_turn: EndOfTurn | None = None) -> StreamState:
        return StreamState(Resampler(sample_rate), self.vads.take(end_of_turn), self.recognizer.create_stream())

    def _decode_ready(self, streams: list[Any]) -> None:
        rec = self.recognizer
        ready = [s for s in streams if rec.is_ready(s)]
        while ready:
            started = time.perf_counter()
            rec.decode_streams(ready)
            self._counted(len(ready), started)
            ready = [s for s in ready if rec.is_ready(s)]

    def step(self, batch: Sequence[tuple[StreamState, np.ndarray]]) -> list[list[STTEvent]]:
        # Audio goes in in slices of about one model chunk, with a batched decode and an endpoint
        # check after each: a loop that fell behind must still end turns where they ended.
        audio = [state.resample(samples) for state, samples in batch]
        out: list[list[STTEvent | VadEvent]] = [[] for _ in batch]
        rounds = max((math.ceil(x.size / SLICE) for x in audio), default=0)
        for r in range(rounds):
            fed = []
            for i, (state, _) in enumerate(batch):
                piece = audio[i][r * SLICE : (r + 1) * SLICE]
                if piece.size:
                    self._accept(state, piece, out[i])
                    fed.append(i)
            self._decode_ready([batch[i][0].stream for i in fed])
            for i in fed:
                state = batch[i][0]
                if state.vad.pauses:
                    self._turn_results(state, out[i])
                else:
                    self._results(state, out[i])
        return [[e for e in events if isinstance(e, STTEvent)] for events in out]

    def _accept(self, state: StreamState, x: np.ndarray, events: list[STTEvent | VadEvent]) -> None:
        for ev in state.vad.accept(x):
            if ev.kind in ("started", "resumed"):
                state.heard_speech = True
            elif ev.kind == "stopped":
                state.last_stop_ms = ev.audio_ms
            # with pauses, a pause and the turn's end take the text decoded with this slice
            events.append(ev if state.vad.pauses and ev.kind in ("paused", "stopped") else _vad_event(ev))
        state.stream.accept_waveform(RATE, x)
        state.samples += x.size

    def _turn_results(self, state: StreamState, events: list[STTEvent | VadEvent]) -> None:
        """With pauses the turn is the VAD's: a pause takes the text as it stands, the turn's end
        takes it as its final and starts the recognizer afresh. The recognizer's own endpoint
        only clears a stream that heard no speech (noise)."""
        rec = self.recognizer
        text = rec.get_result(state.stream).strip() if state.heard_speech else ""
        waiting = [i for i, ev in enumerate(events) if isinstance(ev, VadEvent)]
        if state.vad.in_turn:
            state.vad.set_text(text)
            if text and text != state.last_text:
                events.insert(waiting[0] if waiting else len(events), STTEvent("partial", text, audio_ms=state.position_ms))
                state.last_text = text
        ended = False
        for i, ev in reversed(list(enumerate(events))):
            if not isinstance(ev, VadEvent):
                continue
            if ev.kind == "paused":
                events[i : i + 1] = [STTEvent("paused", text, audio_ms=ev.audio_ms)]
            else:
                final = [STTEvent("final", text, audio_ms=ev.audio_ms)] if text else []
                events[i : i + 1] = [_vad_event(ev), *final]
                ended = True
        if ended or (not state.vad.in_turn and rec.is_endpoint(state.stream)):
            rec.reset(state.stream)
            state.last_text, state.heard_speech = "", state.vad.in_turn

    def _results(self, state: StreamState, events: list[STTEvent | VadEvent]) -> None:
        rec = self.recognizer
        # Text only counts once the VAD has heard speech in this utterance: the model's first
        # guesses may come earlier (clients expect speech.started first), and text that the
        # VAD never heard as speech (a door, music) is noise, not a turn.
        text = rec.get_result(state.stream).strip() if state.heard_speech else ""
        if text and text != state.last_text:
            events.append(STTEvent("partial", text, audio_ms=state.position_ms))
        state.last_text = text
        if rec.is_endpoint(state.stream):
            state.heard_speech = state.vad.in_speech
            if text:
                # end of speech as the VAD heard it; the model's endpoint comes later
                end = state.position_ms if state.vad.in_speech else state.last_stop_ms
                events.append(STTEvent("final", text, audio_ms=end))
            rec.reset(state.stream)
            state.last_text = ""

    def flush(self, state: StreamState) -> list[STTEvent]:
        events: list[STTEvent] = []
        stopped = state.vad.finish()
        if stopped is not None:
            events.append(_vad_event(stopped))
        state.stream.accept_waveform(RATE, np.zeros(int(FLUSH_PADDING_S * RATE), dtype=np.float32))
        self._decode_ready([state.stream])
        text = self.recognizer.get_result(state.stream).strip()
        if text and state.heard_speech:
            events.append(STTEvent("final", text, audio_ms=state.position_ms))
        self.recognizer.reset(state.stream)
        state.last_text, state.heard_speech = "", False
        return events

    def transcription(self, samples: np.ndarray) -> Transcription:
        return _OnlineTranscription(self, samples)


class _OnlineTranscription(Transcription):
    PIECE_S = 5.0  # per advance call
    STEP_S = 1.0  # endpoint checks split long audio into utterances

    def __init__(self, engine: OnlineEngine, samples: np.ndarray) -> None:
        self.engine = engine
        self.stream = engine.recognizer.create_stream()
        self.duration_s = samples.size / RATE
        self.audio = np.concatenate([samples, np.zeros(int(FLUSH_PADDING_S * RATE), dtype=np.float32)])
        self.offset = 0
        self.done = False
        # The VAD listens along (a piece at a time, like the recognizer) to say where the speech is.
        self.vad = engine.vads.take()
        self.speech = Speech()
        self.since_s = 0.0  # where the current utterance's audio began

    def _segment(self, now_s: float) -> Segment | None:
        result = self.engine.recognizer.get_result_all(self.stream)
        window = (self.since_s, min(now_s, self.duration_s))
        self.since_s = window[1]
        return segment_of(result, offset_s=float(result.start_time), window=window, symbols=self.engine.symbols,
                          speech=self.speech)

    def advance(self) -> list[Segment] | None:
        if self.done:
            return None
        rec, found = self.engine.recognizer, []
        end = min(self.audio.size, self.offset + int(self.PIECE_S * RATE))
        step = int(self.STEP_S * RATE)
        for i in range(self.offset, end, step):
            piece = self.audio[i : min(i + step, end)]
            for ev in self.vad.accept(piece):
                self.speech.add(ev.kind, ev.audio_ms / 1000)
            self.stream.accept_waveform(RATE, piece)
            self.engine._decode_ready([self.stream])
            if rec.is_endpoint(self.stream):
                found.append(self._segment((i + piece.size) / RATE))
                rec.reset(self.stream)
        self.offset = end
        if end >= self.audio.size:
            self.stream.input_finished()
            self.engine._decode_ready([self.stream])
            found.append(self._segment(self.audio.size / RATE))
            self.engine.vads.give_back(self.vad)
            self.done = True
        return [s for s in found if s is not None]


class OfflineEngine(Engine):
    def new_state(self, sample_rate: int, end_of_turn: EndOfTurn | None = None) -> StreamState:
        return StreamState(Resampler(sample_rate), self.vads.take(end_of_turn))

    def _decode(self, segments: list[np.ndarray]) -> list[str]:
        return [r.text.strip() for r in self._results(segments)]

    def _results(self, segments: list[np.ndarray]) -> list[Any]:
        """One batched decode; sherpa-onnx's result object per segment."""
        if not segments:
            return []
        rec = self.recognizer
        streams = []
        for audio in segments:
            stream = rec.create_stream()
            stream.accept_waveform(RATE, audio)
            streams.append(stream)
        started = time.perf_counter()
        rec.decode_streams(streams)
        self._counted(len(streams), started)
        return [s.result for s in streams]

    def step(self, batch: Sequence[tuple[StreamState, np.ndarray]]) -> list[list[STTEvent]]:
        interval = int(self.config.offline_partial_interval_ms * RATE / 1000)
        out: list[list[STTEvent | int]] = []
        due: list[tuple[StreamState, np.ndarray, str, float]] = []  # state, audio, kind, audio_ms
        for state, audio in batch:
            events: list[STTEvent | int] = []
            x = state.resample(audio)
            state.samples += x.size
            for ev in state.vad.accept(x) if x.size else []:
                if ev.kind == "paused":
                    if ev.segment is not None and ev.segment.size:
                        events.append(len(due))  # the pause, with the turn's text so far
                        due.append((state, ev.segment, "paused", ev.audio_ms))
                    continue
                events.append(_vad_event(ev))
                if ev.kind == "started":
                    state.last_partial_at = state.samples
                    state.pause_text = None
                elif ev.segment is not None and ev.segment.size:
                    known = state.pause_text
                    state.pause_text = None
                    if known is not None and known[0] == ev.segment.size:  # nothing said since the pause
                        if known[1]:
                            events.append(STTEvent("final", known[1], audio_ms=ev.audio_ms))
                        state.last_text = ""
                        continue
                    events.append(len(due))  # the final goes here once decoded
                    due.append((state, ev.segment, "final", ev.audio_ms))
            if state.vad.in_speech and state.samples - state.last_partial_at >= interval:
                state.last_partial_at = state.samples
                events.append(len(due))
                due.append((state, state.vad.current_audio(), "partial", state.position_ms))
            out.append(events)
        texts = self._decode([audio for _, audio, _, _ in due])
        results: list[list[STTEvent]] = []
        for (state, _), events in zip(batch, out, strict=True):
            resolved: list[STTEvent] = []
            for item in events:
                if isinstance(item, STTEvent):
                    resolved.append(item)
                    continue
                _, segment, kind, audio_ms = due[item]
                text = texts[item]
                if kind == "final":
                    if text:
                        resolved.append(STTEvent("final", text, audio_ms=audio_ms))
                    state.last_text = ""
                elif kind == "paused":
                    resolved.append(STTEvent("paused", text, audio_ms=audio_ms))
                    state.vad.set_text(text)
                    state.pause_text = (segment.size, text)
                elif text and text != state.last_text:
                    resolved.append(STTEvent("partial", text, audio_ms=audio_ms))
                    state.last_text = text
                    state.vad.set_text(text)
            results.append(resolved)
        return results

    def flush(self, state: StreamState) -> list[STTEvent]:
        stopped = state.vad.finish()
        if stopped is None or stopped.segment is None or not stopped.segment.size:
            return []
        events = [_vad_event(stopped)]
        text = self._decode([stopped.segment])[0]
        if text:
            events.append(STTEvent("final", text, audio_ms=stopped.audio_ms))
        state.last_text = ""
        return events

    def transcription(self, samples: np.ndarray) -> Transcription:
        return _OfflineTranscription(self, samples)


class _OfflineTranscription(Transcription):
    SEGMENTS_PER_CALL = 4

    def __init__(self, engine: OfflineEngine, samples: np.ndarray) -> None:
        self.engine = engine
        self.samples = samples
        self.segments: list[tuple[float, np.ndarray]] | None = None  # (start in seconds, audio)

    def advance(self) -> list[Segment] | None:
        if self.segments is None:  # the VAD pass is fast (seconds of audio per ms)
            vad = self.engine.vads.take()
            found = [ev for ev in vad.accept(self.samples) if ev.kind == "stopped"]
            tail = vad.finish()
            self.engine.vads.give_back(vad)
            if tail is not None:
                found.append(tail)
            self.segments = [(ev.audio_ms / 1000 - ev.segment.size / RATE, ev.segment) for ev in found
                             if ev.segment is not None and ev.segment.size]
        if not self.segments:
            return None
        batch, self.segments = self.segments[: self.SEGMENTS_PER_CALL], self.segments[self.SEGMENTS_PER_CALL :]
        results = self.engine._results([audio for _, audio in batch])
        out = []
        for (start, audio), result in zip(batch, results, strict=True):
            window = (max(0.0, start), start + audio.size / RATE)
            found_segment = segment_of(result, offset_s=window[0], window=window, symbols=self.engine.symbols,
                                       speech=Speech([window]))
            if found_segment is not None:
                out.append(found_segment)
        return out
