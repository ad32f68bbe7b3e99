"""Decode an uploaded audio file to mono float32 at the STT rate, in bounded memory.

The duration is read from the container's header first and a file over the limit is refused
before anything is decoded (a 533 KiB FLAC can hold an hour of silence). Decoding then goes in
pieces, each resampled to the target rate as it comes, and stops as soon as the limit is passed
(for containers whose header does not say how long they are). So memory stays near the limit's
worth of 16 kHz samples, whatever the file's rate. soundfile reads WAV, FLAC, OGG and MP3
(libsndfile >= 1.1); PyAV the rest (MP4/M4A, WebM, Opus...). Errors say what is wrong."""

from __future__ import annotations

import importlib.util
import io
import re
from typing import Any

import numpy as np

from monolith.errors import InvalidRequest

BLOCK_S = 10.0  # decoded at a time
_OBJECT_REPR = re.compile(r"<[^<>]* at 0x[0-9a-fA-F]+>")


def _clean(exc: BaseException) -> str:
    """A library's message without Python object addresses."""
    return _OBJECT_REPR.sub("the upload", str(exc)).strip() or type(exc).__name__


def _too_long(seconds: float, max_seconds: float) -> InvalidRequest:
    return InvalidRequest(
        f"the audio is {seconds:.0f} s long; at most {max_seconds:.0f} s per request (stt.max_transcription_s)",
        code="audio_too_long", param="file",
    )


class _Collector:
    """Resampled pieces, and a stop once the limit is passed."""

    def __init__(self, source_rate: int, target_rate: int, max_seconds: float) -> None:
        import soxr

        self.target_rate = target_rate
        self.max_seconds = max_seconds
        self.stream = soxr.ResampleStream(source_rate, target_rate, 1, dtype="float32") \
            if source_rate != target_rate else None
        self.pieces: list[np.ndarray] = []
        self.samples = 0

    def add(self, mono: np.ndarray, last: bool = False) -> None:
        piece = np.asarray(mono, dtype=np.float32)
        if self.stream is not None:
            piece = self.stream.resample_chunk(piece, last=last)
        if piece.size:
            self.pieces.append(piece)
            self.samples += piece.size
        if self.samples > self.max_seconds * self.target_rate:
            raise _too_long(self.samples / self.target_rate, self.max_seconds)

    def result(self) -> np.ndarray:
        return np.concatenate(self.pieces) if self.pieces else np.zeros(0, dtype=np.float32)


def _with_soundfile(data: bytes, rate: int, max_seconds: float) -> np.ndarray:
    import soundfile

    with soundfile.SoundFile(io.BytesIO(data)) as f:
        if f.frames > 0 and f.samplerate > 0 and f.frames / f.samplerate > max_seconds:
            raise _too_long(f.frames / f.samplerate, max_seconds)
        out = _Collector(f.samplerate, rate, max_seconds)
        block = max(1, int(BLOCK_S * f.samplerate))
        while True:
            frames = f.read(block, dtype="float32", always_2d=True)
            if not len(frames):
                break
            out.add(frames.mean(axis=1))
        out.add(np.zeros(0, dtype=np.float32), last=True)
    return out.result()


def _with_av(data: bytes, rate: int, max_seconds: float) -> np.ndarray:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise InvalidRequest("the file has no audio stream", code="invalid_audio", param="file")
        stream: Any = container.streams.audio[0]
        declared = (float(stream.duration * stream.time_base) if stream.duration and stream.time_base
                    else (container.duration or 0) / 1_000_000)
        if declared > max_seconds:
            raise _too_long(declared, max_seconds)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        out = _Collector(rate, rate, max_seconds)
        for frame in container.decode(stream):
            for piece in resampler.resample(frame):
                out.add(piece.to_ndarray().reshape(-1))
        for piece in resampler.resample(None):
            out.add(piece.to_ndarray().reshape(-1))
    return out.result()


def decode_audio(data: bytes, *, max_seconds: float, rate: int = 16000) -> tuple[np.ndarray, int]:
    """(mono float32 samples at `rate`, `rate`); blocking: run it off the event loop."""
    if not data:
        raise InvalidRequest("the uploaded file is empty", code="invalid_audio", param="file")
    try:
        samples = _with_soundfile(data, rate, max_seconds)
    except InvalidRequest:
        raise
    except Exception as exc:  # soundfile raises several kinds for formats it does not read
        first = _clean(exc)
        if importlib.util.find_spec("av") is None:
            raise InvalidRequest(
                f"could not decode the file as audio ({first}); WAV, FLAC, OGG and MP3 are read, "
                "install `av` for more formats", code="invalid_audio", param="file",
            ) from None
        try:
            samples = _with_av(data, rate, max_seconds)
        except InvalidRequest:
            raise
        except Exception as av_exc:
            raise InvalidRequest(f"could not decode the file as audio: {_clean(av_exc)}",
                                 code="invalid_audio", param="file") from None
    if samples.size == 0:
        raise InvalidRequest("the file decodes to no audio samples", code="invalid_audio", param="file")
    if not np.isfinite(samples).all():
        raise InvalidRequest("the audio contains NaN or infinite samples", code="invalid_audio", param="file")
    return samples, rate
