"""One response of a voice session: the chat to the LLM, its text cut into chunks as it streams,
each chunk spoken by TTS as soon as it is complete, and the timing of every step.

A response may be held (preemptive: started at a pause in the user's speech, before the turn
ended): its events wait in its gate, in order, and TTS renders only its first chunk, until the
session releases it (the final transcript says what it was built on) or throws it away.

Tool calls (voice/tools.py) go out as events while the LLM streams, the whole calls once it is
done; the text said before them is spoken as usual."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from monolith import metrics
from monolith.config import VoiceConfig
from monolith.providers.llm import ChatMessage, LLMProvider, SamplingOptions
from monolith.providers.tts import TTSProvider
from monolith.rag.passages import Passage
from monolith.voice.chunking import SentenceChunker
from monolith.voice.conversation import SpokenChunk
from monolith.voice.events import (
    ResponseAudio,
    ResponseAudioStarted,
    ResponseFunctionCall,
    ResponseStarted,
    ResponseTextDelta,
    ServerEvent,
    TurnMetrics,
)
from monolith.voice.options import SessionOptions
from monolith.voice.timing import TurnTiming, now
from monolith.voice.tools import CallCollector, ResponseTools

log = logging.getLogger(__name__)
Emit = Callable[[ServerEvent], Awaitable[None]]
STAGES = ("partial_ms", "final_ms", "llm_first_token_ms", "tts_start_ms", "pipeline_overhead_ms")


class Gate:
    """Where a response's events go: straight to the client, or, while the response is held,
    into a buffer that the release sends in order (events emitted meanwhile queue behind it).
    It stamps the moment the first audio actually went out."""

    def __init__(self, emit: Emit, timing: TurnTiming, *, held: bool = False) -> None:
        self._emit = emit
        self.timing = timing
        self.held = held
        self.released = asyncio.Event()
        if not held:
            self.released.set()
        self._buffer: deque[ServerEvent] = deque()
        self._flushing = False

    async def emit(self, event: ServerEvent) -> None:
        if self.held or self._flushing:
            self._buffer.append(event)
            return
        await self._send(event)

    async def _send(self, event: ServerEvent) -> None:
        await self._emit(event)
        if isinstance(event, ResponseAudio) and self.timing.audio_sent is None:
            self.timing.audio_sent = now()

    async def release(self, user_text: str) -> None:
        """Send what was held (the response now answers `user_text`, the final transcript's
        words), then let everything through."""
        self.held, self._flushing = False, True
        try:
            while self._buffer:
                event = self._buffer.popleft()
                if isinstance(event, ResponseStarted):
                    event = ResponseStarted(event.response_id, user_text)
                await self._send(event)
        finally:
            self._flushing = False
            self.released.set()


@dataclass
class Response:
    id: str
    user_text: str
    timing: TurnTiming
    gate: Gate
    text: str = ""
    spoken: list[str] = field(default_factory=list)  # chunks whose audio went out (heard, as far as we know)
    layout: list[SpokenChunk] = field(default_factory=list)  # where each spoken chunk sits in the audio
    samples: int = 0  # output audio rendered so far (sent, once released)
    sources: list[Passage] = field(default_factory=list)
    tools: ResponseTools = field(default_factory=ResponseTools)
    task: asyncio.Task[None] | None = None

    async def emit(self, event: ServerEvent) -> None:
        await self.gate.emit(event)


@dataclass
class Speaker:
    """What a response needs from its session: the providers, the options, where events go."""

    llm: LLMProvider
    tts: TTSProvider
    config: VoiceConfig
    sampling: SamplingOptions
    output_sample_rate: int

    async def answer(self, resp: Response, messages: list[ChatMessage], options: SessionOptions) -> None:
        t = resp.timing
        chunks: asyncio.Queue[str | None] = asyncio.Queue()
        speaking = asyncio.create_task(self._speak(resp, chunks, options), name=f"tts-{resp.id}")
        try:
            chunker = SentenceChunker(self.config.chunk_min_chars, self.config.chunk_max_chars,
                                      self.config.first_chunk_max_chars)
            calls = CallCollector(resp.id)
            finish = None
            t.llm_request = now()
            async for delta in self.llm.stream_chat(messages, resp.tools.sampling(self.sampling), request_id=resp.id):
                finish = delta.finish_reason or finish
                if delta.text or delta.tool_calls:
                    t.llm_first_token = t.llm_first_token or now()
                for piece in delta.tool_calls:
                    await resp.emit(calls.push(piece))
                if not delta.text:
                    continue
                resp.text += delta.text
                await resp.emit(ResponseTextDelta(resp.id, delta.text))
                _queue(chunker.push(delta.text), chunks, t)
            rest = chunker.flush()
            _queue([rest] if rest else [], chunks, t)
            chunks.put_nowait(None)
            made = calls.calls()
            if made and finish == "length":  # arguments cut off: nothing anyone could run
                log.warning("tool call cut off at max_tokens, not sent", extra={"response_id": resp.id})
                made = ()
            resp.tools.calls = made
            for call in made:  # the client may run them while the text before them is spoken
                await resp.emit(ResponseFunctionCall(resp.id, call.id, call.name, call.arguments))
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
            if index:  # held: only the first chunk is rendered before the release
                await resp.gate.released.wait()
            t.tts_request = t.tts_request or now()
            placed: SpokenChunk | None = None
            async for pcm in self.tts.stream_pcm16(
                chunk, voice=options.voice, request_id=f"{resp.id}-{index}", sample_rate=self.output_sample_rate,
                first_in_response=index == 0, speed=options.speed,
            ):
                if t.tts_first_audio is None:
                    t.tts_first_audio = now()
                    await resp.emit(ResponseAudioStarted(resp.id, self.output_sample_rate))
                if placed is None:
                    resp.spoken.append(chunk)  # its audio is going out: it counts as heard
                    placed = SpokenChunk(chunk, resp.samples)
                    resp.layout.append(placed)
                placed.samples += len(pcm) // 2
                resp.samples += len(pcm) // 2
                await resp.emit(ResponseAudio(resp.id, pcm))
            index += 1

    async def report(self, resp: Response, session_id: str) -> None:
        figures = resp.timing.metrics()
        metrics.TURNS.labels("completed").inc()
        for stage in STAGES:
            value = figures[stage]
            if value is not None:
                metrics.TURN_LATENCY.labels(stage.removesuffix("_ms")).observe(value / 1000)
        log.info("turn metrics", extra={"session_id": session_id, **figures})
        await resp.emit(TurnMetrics(resp.id, figures))


def _queue(ready: list[str], chunks: asyncio.Queue[str | None], t: TurnTiming) -> None:
    for chunk in ready:
        t.first_chunk_ready = t.first_chunk_ready or now()
        chunks.put_nowait(chunk)
