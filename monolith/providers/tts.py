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


class TTSProvider(Provider):
    kind: ClassVar[str] = "tts"
    native_sample_rate: int = 44100

    @abstractmethod
    def voices(self) -> list[str]: ...

    @abstractmethod
    def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True
    ) -> AsyncIterator[np.ndarray]:
        """Yield float32 mono audio at `native_sample_rate`, in order, as it is produced.

        `first_in_response` lets the scheduler run a response's first chunk ahead of other
        responses' later chunks (their audio is already playing)."""

    async def stream_pcm16(
        self, text: str, *, voice: str, request_id: str, sample_rate: int, first_in_response: bool = True
    ) -> AsyncIterator[bytes]:
        async for samples in self.synthesize(
            text, voice=voice, request_id=request_id, first_in_response=first_in_response
        ):
            # soxr on a whole sentence takes milliseconds: on the provider's thread, not the loop
            yield await self.runner.run(to_pcm16, samples, self.native_sample_rate, sample_rate)

    def running_requests(self) -> int:
        return 0

    def in_flight(self) -> int:
        return self.running_requests()
