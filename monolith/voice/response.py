"""One response of a voice session: the chat to the LLM, its text cut into chunks as it streams,
each chunk spoken by TTS as soon as it is complete, and the timing of every step."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monolith import metrics
from monolith.config import VoiceConfig
from monolith.providers.llm import ChatMessage, LLMProvider, SamplingOptions
from monolith.providers.tts import TTSProvider
from monolith.rag.passages import Passage
from monolith.voice.chunking import SentenceChunker
from monolith.voice.conversation import SpokenChunk
from monolith.voice.events import ResponseAudio, ResponseAudioStarted, ResponseTextDelta, ServerEvent, TurnMetrics
from monolith.voice.options import SessionOptions
from monolith.voice.timing import TurnTiming, now

log = logging.getLogger(__name__)
Emit = Callable[[ServerEvent], Awaitable[None]]


@dataclass
class Response:
    id: str
    user_text: str
    timing: TurnTiming
    text: str = ""
    spoken: list[str] = field(default_factory=list)  # chunks whose audio went out (heard, as far as we know)
    layout: list[SpokenChunk] = field(default_factory=list)  # where each spoken chunk sits in the audio
    samples: int = 0  # output audio sent so far
    sources: list[Passage] = field(default_factory=list)
    task: asyncio.Task[None] | None = None


@dataclass
class Speaker:
    """What a response needs from its session: the providers, the options, where events go."""

    llm: LLMProvider
    tts: TTSProvider
    config: VoiceConfig
    sampling: SamplingOptions
    output_sample_rate: int
    emit: Emit

    async def answer(self, resp: Response, messages: list[ChatMessage], options: SessionOptions) -> None:
        t = resp.timing
        chunks: asyncio.Queue[str | None] = asyncio.Queue()
        speaking = asyncio.create_task(self._speak(resp, chunks, options), name=f"tts-{resp.id}")
        try:
            chunker = SentenceChunker(self.config.chunk_min_chars, self.config.chunk_max_chars,
                                      self.config.first_chunk_max_chars)
            t.llm_request = now()
            async for delta in self.llm.stream_chat(messages, self.sampling, request_id=resp.id):
                if not delta.text:
                    continue
                t.llm_first_token = t.llm_first_token or now()
                resp.text += delta.text
                await self.emit(ResponseTextDelta(resp.id, delta.text))
                _queue(chunker.push(delta.text), chunks, t)
            rest = chunker.flush()
            _queue([rest] if rest else [], chunks, t)
            chunks.put_nowait(None)
            await speaking
        finally:
            if not speaking.done():
                speaking.cancel()
                with contextlib.suppress(BaseException):
                    await speaking

    async def _speak(self, resp: Response, chunks: asyncio.Queue[str | None], options: SessionOptions) -> None:
        t = resp.timing
        index = 0
        while (chunk := await chunks.get()) is not None:
            if not options.output_audio:  # text only: every chunk counts as given
                resp.spoken.append(chunk)
                continue
            t.tts_request = t.tts_request or now()
            placed: SpokenChunk | None = None
            async for pcm in self.tts.stream_pcm16(
                chunk, voice=options.voice, request_id=f"{resp.id}-{index}", sample_rate=self.output_sample_rate,
                first_in_response=index == 0, speed=options.speed,
            ):
                if t.tts_first_audio is None:
                    t.tts_first_audio = now()
                    await self.emit(ResponseAudioStarted(resp.id, self.output_sample_rate))
                if placed is None:
                    resp.spoken.append(chunk)  # its audio is going out: it counts as heard
                    placed = SpokenChunk(chunk, resp.samples)
                    resp.layout.append(placed)
                placed.samples += len(pcm) // 2
                resp.samples += len(pcm) // 2
                await self.emit(ResponseAudio(resp.id, pcm))
                t.audio_sent = t.audio_sent or now()
            index += 1

    async def report(self, resp: Response, session_id: str) -> None:
        figures = resp.timing.metrics()
        metrics.TURNS.labels("completed").inc()
        for stage in ("partial_ms", "final_ms", "llm_first_token_ms", "tts_start_ms", "pipeline_overhead_ms"):
            value = figures[stage]
            if value is not None:
                metrics.TURN_LATENCY.labels(stage.removesuffix("_ms")).observe(value / 1000)
        log.info("turn metrics", extra={"session_id": session_id, **figures})
        await self.emit(TurnMetrics(resp.id, figures))


def _queue(ready: list[str], chunks: asyncio.Queue[str | None], t: TurnTiming) -> None:
    for chunk in ready:
        t.first_chunk_ready = t.first_chunk_ready or now()
        chunks.put_nowait(chunk)
