"""The TTS interface: stream PCM16 audio for a text; cancelling the stream stops the work."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterator
from typing import ClassVar

import numpy as np

from monolith.providers.base import Provider


def to_pcm16(samples: np.ndarray, from_rate: int, to_rate: int) -> bytes:
    """Float32 mono at `from_rate` -> little-endian PCM16 at `to_rate` (soxr resampling)."""
    audio = np.asarray(samples, dtype=np.float32).reshape(-1)
    if from_rate != to_rate and audio.size:
        import soxr

        audio = soxr.resample(audio, from_rate, to_rate)
    return (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _render_pcm16(samples: np.ndarray, native_rate: int, rate: int, speed: float) -> bytes:
    return to_pcm16(time_stretch(samples, native_rate, speed), native_rate, rate)


def time_stretch(samples: np.ndarray, rate: int, speed: float) -> np.ndarray:
    """`samples` spoken `speed` times as fast, pitch kept (WSOLA: overlap-add of 40 ms frames,
    each taken where it best continues the last). For engines with no rate control of their own."""
    audio = np.asarray(samples, dtype=np.float32).reshape(-1)
    if speed == 1.0 or audio.size == 0:
        return audio
    frame = int(0.04 * rate)
    hop = frame // 2
    search = frame // 4
    window = np.hanning(frame).astype(np.float32)
    out_len = int(audio.size / speed) + frame
    out = np.zeros(out_len + frame, dtype=np.float32)
    norm = np.zeros_like(out)
    padded = np.concatenate([audio, np.zeros(frame + search, dtype=np.float32)])
    previous = padded[:frame]
    position = 0
    for k, out_at in enumerate(range(0, out_len, hop)):
        nominal = int(k * hop * speed)
        if nominal + frame + search >= padded.size:
            break
        if k:
            # where the next frame lines up best with the natural continuation of the last one
            target = previous
            start = max(0, nominal - search)
            candidates = padded[start : nominal + search + frame]
            scores = np.correlate(candidates, target, mode="valid")
            position = start + int(np.argmax(scores)) if scores.size else nominal
        else:
            position = nominal
        piece = padded[position : position + frame]
        out[out_at : out_at + frame] += piece * window
        norm[out_at : out_at + frame] += window
        previous = padded[position + hop : position + hop + frame] if position + hop + frame <= padded.size else piece
    length = int(audio.size / speed)
    return np.asarray(out[:length] / np.maximum(norm[:length], 1e-3), dtype=np.float32)


class TTSProvider(Provider):
    kind: ClassVar[str] = "tts"
    native_sample_rate: int = 44100

    @abstractmethod
    def voices(self) -> list[str]: ...

    @abstractmethod
    def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True, speed: float = 1.0,
    ) -> AsyncIterator[np.ndarray]:
        """Yield float32 mono audio at `native_sample_rate`, in order, as it is produced.

        `first_in_response` lets the scheduler run a response's first chunk ahead of other
        responses' later chunks (their audio is already playing). `speed` is for engines whose
        capabilities say they control their speaking rate; the others' audio is time-stretched."""

    async def stream_pcm16(
        self, text: str, *, voice: str, request_id: str, sample_rate: int, first_in_response: bool = True,
        speed: float = 1.0,
    ) -> AsyncIterator[bytes]:
        own_speed = self.capabilities.speed
        async for samples in self.synthesize(
            text, voice=voice, request_id=request_id, first_in_response=first_in_response,
            speed=speed if own_speed else 1.0,
        ):
            # soxr (and a stretch) on a whole sentence take milliseconds: on the provider's thread
            yield await self.runner.run(_render_pcm16, samples, self.native_sample_rate, sample_rate,
                                        1.0 if own_speed else speed)

    def batch_capacity(self) -> int:
        """Chunks this engine renders at once (the TTS device queue hands out that many slots)."""
        return 1

    def running_requests(self) -> int:
        return 0

    def in_flight(self) -> int:
        return self.running_requests()
