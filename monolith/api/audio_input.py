"""Decode an uploaded audio file to mono float32 samples: soundfile first (WAV, FLAC, OGG, MP3
with libsndfile >= 1.1), PyAV for the rest (MP4/M4A, WebM, Opus...). Errors say what is wrong."""

from __future__ import annotations

import importlib.util
import io

import numpy as np

from monolith.errors import InvalidRequest


def _with_soundfile(data: bytes) -> tuple[np.ndarray, int]:
    import soundfile

    samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return samples.mean(axis=1), int(rate)


def _with_av(data: bytes) -> tuple[np.ndarray, int]:
    import av

    with av.open(io.BytesIO(data), mode="r") as container:
        if not container.streams.audio:
            raise InvalidRequest("the file has no audio stream", code="invalid_audio", param="file")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono")
        chunks = []
        rate = 0
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                rate = out.sample_rate
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, dtype=np.float32)
    return samples, int(rate or 16000)


def decode_audio(data: bytes, *, max_seconds: float) -> tuple[np.ndarray, int]:
    if not data:
        raise InvalidRequest("the uploaded file is empty", code="invalid_audio", param="file")
    errors = []
    try:
        samples, rate = _with_soundfile(data)
    except InvalidRequest:
        raise
    except Exception as exc:  # soundfile raises several kinds for unknown formats
        errors.append(f"soundfile: {exc}")
        if importlib.util.find_spec("av") is None:
            raise InvalidRequest(
                f"could not decode the file as audio ({errors[0]}); WAV, FLAC, OGG and MP3 are read, "
                "install `av` for more formats", code="invalid_audio", param="file",
            ) from exc
        try:
            samples, rate = _with_av(data)
        except InvalidRequest:
            raise
        except Exception as av_exc:
            raise InvalidRequest(
                f"could not decode the file as audio: {type(av_exc).__name__}: {av_exc}",
                code="invalid_audio", param="file",
            ) from av_exc
    if samples.size == 0:
        raise InvalidRequest("the file decodes to no audio samples", code="invalid_audio", param="file")
    seconds = samples.size / rate
    if seconds > max_seconds:
        raise InvalidRequest(
            f"the audio is {seconds:.0f} s long; at most {max_seconds:.0f} s per request (stt.max_transcription_s)",
            code="audio_too_long", param="file",
        )
    if not np.isfinite(samples).all():
        raise InvalidRequest("the audio contains NaN or infinite samples", code="invalid_audio", param="file")
    return samples, rate
