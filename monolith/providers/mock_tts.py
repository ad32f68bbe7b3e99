"""Renders a tone whose length follows the text, paced by time-to-first-chunk and real-time factor."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

import numpy as np

from monolith.config import MockTTSConfig
from monolith.providers.tts import TTSProvider

SECONDS_PER_CHAR = 0.08
PIECE_S = 0.2  # audio is yielded in pieces of this length, like a vocoder's frames


class MockTTS(TTSProvider):
    backend = "mock"
    is_mock = True
    native_sample_rate = 24000

    def __init__(self, config: MockTTSConfig, *, model_id: str = "mock-tts") -> None:
        super().__init__(model_id=model_id)
        self.config = config
        self.active: set[str] = set()
        self.cancelled: deque[str] = deque(maxlen=256)  # the last cancelled request ids

    def voices(self) -> list[str]:
        return ["default"]

    async def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True, speed: float = 1.0,
    ) -> AsyncIterator[np.ndarray]:
        duration = max(len(text.strip()), 1) * SECONDS_PER_CHAR
        rate = self.native_sample_rate
        total = int(duration * rate)
        piece = int(PIECE_S * rate)
        t = np.arange(total, dtype=np.float32) / rate
        tone = (0.2 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)
        self.active.add(request_id)
        done = False
        try:
            await asyncio.sleep(self.config.first_chunk_ms / 1000)
            for start in range(0, total, piece):
                chunk = tone[start : start + piece]
                if start:
                    await asyncio.sleep(len(chunk) / rate * self.config.real_time_factor)
                yield chunk
            done = True
        finally:
            self.active.discard(request_id)
            if not done:
                self.cancelled.append(request_id)

    def running_requests(self) -> int:
        return len(self.active)
