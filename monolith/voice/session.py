"""One voice session: audio in -> STT -> LLM -> sentence chunks -> TTS audio out, with barge-in.

The transport feeds it (`on_audio`, `on_text`, `add_user_text`, `create_response`, `commit_audio`,
`clear_audio`, `update`, `cancel_response`, `truncate`, `add_tool_result`) and receives typed
events through an `OutputSink`; it never sees a WebSocket or a wire format. Turns are taken by
the server (the STT's voice activity ends a turn and starts the answer) or, with
`turn_detection` off, by the client.

With `[voice] preemptive` the answer starts at a pause in the user's speech, held (nothing goes
out), on the transcript as it stands; the end of the turn releases it when the final transcript
says the same words, and throws it away (aborting its LLM and TTS work) when it does not, or when
the user goes on speaking.

Tools (voice/tools.py): a response may call the session's tools; the calls go out as events and
into the history, the response ends, and the result comes back with `add_tool_result`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

import numpy as np

from monolith import metrics
from monolith.config import VoiceConfig
from monolith.errors import InvalidRequest, MonolithError, ProviderFailed
from monolith.logs import request_id_var
from monolith.providers.llm import ChatMessage, LLMProvider, SamplingOptions
from monolith.providers.stt import STTEvent, STTProvider, STTStream
from monolith.providers.tts import TTSProvider
from monolith.rag.passages import Retriever, context_message
from monolith.text import join_texts, normalised
from monolith.voice.conversation import Conversation
from monolith.voice.events import (
    CancelReason,
    ResponseCancelled,
    ResponseDone,
    ResponseStarted,
    ServerEvent,
    SessionClosing,
    SessionCreated,
    SessionEnded,
    SessionError,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptFinal,
    TranscriptPartial,
)
from monolith.voice.options import OptionsUpdate, SessionOptions
from monolith.voice.response import Gate, Response, Speaker
from monolith.voice.timing import AudioClock, TurnTiming, now
from monolith.voice.tools import ResponseTools, check_tools, record_result
from monolith.voice.turns import TurnEnds, end_of_turn_policy

log = logging.getLogger(__name__)
COMMIT_WAIT_S = 3.0  # a client's commit waits this long for the recognizer's last words


class OutputSink(Protocol):
    """Where a session's events go: its transport, or a test's list."""

    async def emit(self, event: ServerEvent) -> None: ...


class VoiceSession:
    def __init__(
        self,
        *,
        session_id: str,
        config: VoiceConfig,
        llm: LLMProvider,
        stt: STTProvider,
        tts: TTSProvider,
        sink: OutputSink,
        output_sample_rate: int,
        sampling: SamplingOptions,
        default_voice: str = "default",
        retriever: Retriever | None = None,
        input_sample_rate: int | None = None,
    ) -> None:
        self.id = session_id
        self.config = config
        self.stt, self.tts = stt, tts
        self.sink = sink
        self.output_sample_rate = output_sample_rate
        self.retriever = retriever
        self.speaker = Speaker(llm, tts, config, sampling, output_sample_rate)
        self.end_of_turn = end_of_turn_policy(config)
        self.turn_ends = TurnEnds(self.end_of_turn)
        self.options = SessionOptions(
            input_sample_rate=input_sample_rate or config.input_sample_rate, voice=default_voice,
            system_prompt=config.system_prompt, language=config.language, use_rag=config.use_rag,
        )
        self.conversation = Conversation(config.history_turns)
        self.clock = AudioClock()
        self.stream: STTStream | None = None
        self.stt_task: asyncio.Task[None] | None = None
        self.barge_task: asyncio.Task[None] | None = None
        self.response: Response | None = None
        self.held: Response | None = None  # a preemptive answer, not released yet
        self.paused_at: float | None = None  # the user paused: where their speech ended (input audio ms)
        self.stopped_at = 0.0  # input audio received when the STT said the turn ended
        self.pending = TurnTiming()
        self.unanswered: list[str] = []  # user words not answered yet (turns taken by the client)
        self.uncommitted: list[str] = []  # heard, but the client has not committed them
        self._heard_final = asyncio.Event()
        self.turns = 0
        self.closed = False

    @property
    def history(self) -> list[ChatMessage]:
        return self.conversation.messages

    # --- transport-facing API --------------------------------------------------------------

    async def start(self) -> None:
        await self._open_stream()
        await self.sink.emit(SessionCreated(self.id, self.options.input_sample_rate, self.output_sample_rate,
                                            self.options.model_dump()))

    @property
    def busy(self) -> bool:
        return self.response is not None

    async def on_audio(self, pcm: bytes) -> None:
        if len(pcm) % 2:
            raise InvalidRequest("audio frames are PCM16: an even number of bytes", code="invalid_audio")
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self.clock.add(samples.size, self.options.input_sample_rate)
        assert self.stream is not None
        await self.stream.feed(samples)

    def _checked(self, text: str) -> str:
        text = text.strip()
        if not text:
            raise InvalidRequest("the text is empty", code="empty_text")
        if len(text) > self.config.max_text_chars:
            raise InvalidRequest(f"the text is longer than {self.config.max_text_chars} characters", code="text_too_long")
        return text

    async def on_text(self, text: str) -> None:
        """A typed turn: answered at once (interrupting a running answer)."""
        text = self._checked(text)
        await self._discard_held("other")
        await self.cancel_response("interrupted")
        self.turn_ends.reset()  # what comes next answers this, not the last spoken turn
        start = now()
        await self._start_response(text, TurnTiming(speech_end=start, final=start))

    def add_user_text(self, text: str) -> None:
        """A user message that waits for `create_response` (the Realtime API's item.create)."""
        self.unanswered.append(self._checked(text))

    async def create_response(self, tools: ResponseTools | None = None) -> str:
        """Answer what the user said since the last answer (or the conversation as it stands, a
        tool's result included); `tools`: this response's own, instead of the session's."""
        await self._discard_held("other")
        await self.cancel_response("interrupted")
        self.turn_ends.reset()
        user_text = join_texts(self.unanswered)
        self.unanswered.clear()
        start = now()
        return self._new_response(user_text, TurnTiming(speech_end=start, final=start), held=False, tools=tools).id

    async def add_tool_result(self, call_id: str, output: str, *, respond: bool = False) -> None:
        """The result of a function call the model made; `respond`: answer with it now (when the
        response that made the call is still speaking, as soon as it ends)."""
        running = self.response.tools if self.response is not None else None
        if record_result(running, self.conversation, call_id, output):
            assert running is not None
            running.answer_after = running.answer_after or respond
        elif respond:
            await self.create_response()

    async def commit_audio(self) -> str:
        """The client ends its turn (turn detection off): whatever the recognizer heard since the
        last commit becomes the user's words; the final transcript event carries them."""
        assert self.stream is not None
        self._heard_final.clear()
        await self.stream.flush()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._heard_final.wait(), COMMIT_WAIT_S)
        text = join_texts(self.uncommitted)
        self.uncommitted.clear()
        timing, self.pending = self.pending, TurnTiming()
        timing.final = now()
        await self.sink.emit(TranscriptFinal(text, round(self.clock.position_ms, 1)))
        if text:
            self.unanswered.append(text)
        return text

    async def clear_audio(self) -> None:
        """Forget the audio not yet committed (a fresh recognizer stream)."""
        self.uncommitted.clear()
        await self._open_stream()

    async def update(self, update: OptionsUpdate) -> None:
        """Apply session.update; every field is checked before anything changes."""
        changes = update.changes()
        voice = changes.get("voice")
        if voice is not None and voice not in self.tts.voices():
            raise InvalidRequest(f"unknown voice {voice!r}; available: {self.tts.voices()}", code="unknown_voice",
                                 param="voice")
        for key in ("system_prompt", "language"):
            value = changes.get(key)
            if isinstance(value, str) and len(value) > self.config.max_text_chars:
                raise InvalidRequest(f"{key} is longer than {self.config.max_text_chars} characters",
                                     code="invalid_value", param=key)
        check_tools(self.options.tools if update.tools is None else update.tools,
                    update.tool_choice or self.options.tool_choice)
        rate_changed = changes.get("input_sample_rate", self.options.input_sample_rate) != self.options.input_sample_rate
        await self._discard_held("other")  # built with the options as they were
        self.options = self.options.model_copy(update=changes)
        if rate_changed:
            await self._open_stream()
        await self.sink.emit(SessionUpdated(self.options.model_dump()))

    async def cancel_response(self, reason: CancelReason) -> bool:
        """Cancel the running response: abort the LLM request, stop TTS, keep what was heard."""
        resp = self.response
        if resp is None or resp.task is None or resp.task.done():
            return False
        self.response = None
        started = now()
        resp.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await resp.task
        spoken = join_texts(resp.spoken)
        self._remember(resp, spoken)
        await resp.emit(ResponseCancelled(resp.id, reason, spoken))
        metrics.TURNS.labels("cancelled").inc()
        if reason == "barge_in":
            metrics.BARGE_IN_LATENCY.observe(now() - started)
        log.info("response cancelled", extra={"session_id": self.id, "response_id": resp.id, "reason": reason})
        return True

    async def truncate(self, response_id: str, audio_end_ms: float) -> str:
        """The listener heard `audio_end_ms` of this answer's audio: the history keeps exactly that."""
        if self.response is not None and self.response.id == response_id:
            await self.cancel_response("truncated")
        heard = self.conversation.truncate(response_id, audio_end_ms, self.output_sample_rate)
        if heard is None:
            raise InvalidRequest(f"no answer {response_id!r} to truncate (only recent answers can be)",
                                 code="unknown_item", param="item_id")
        return heard

    async def drain(self, within_s: float) -> None:
        """The server is shutting down: say so, let the running response finish (at most
        `within_s`), then end the session."""
        await self.sink.emit(SessionClosing("server_shutdown", round(within_s, 1)))
        running = self.response.task if self.response is not None else None
        if running is not None:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(running), within_s)
        await self.close()
        await self.sink.emit(SessionEnded("server_shutdown"))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await self._discard_held("other")
        resp, self.response = self.response, None
        tasks = [t for t in (resp.task if resp else None, self.barge_task, self.stt_task) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.stream is not None:
            await self.stream.close()

    # --- STT side --------------------------------------------------------------------------

    async def _open_stream(self) -> None:
        if self.stt_task is not None:
            self.stt_task.cancel()
            with contextlib.suppress(BaseException):
                await self.stt_task
        if self.stream is not None:
            await self.stream.close()
        await self._discard_held("other")
        self.clock.reset()
        self.paused_at = None
        self.turn_ends.reset()
        self.stream = await self.stt.open_stream(sample_rate=self.options.input_sample_rate, request_id=self.id,
                                                 end_of_turn=self.end_of_turn)
        self.stt_task = asyncio.create_task(self._stt_loop(self.stream), name=f"stt-{self.id}")

    async def _stt_loop(self, stream: STTStream) -> None:
        try:
            async for ev in stream.events():
                await self._on_stt_event(ev)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("STT stream failed", extra={"session_id": self.id})
            failed = ProviderFailed(f"speech recognition failed: {type(exc).__name__}: {exc}", code="stt_failed",
                                    public="speech recognition failed; this session hears nothing more")
            await self.sink.emit(SessionError(failed))

    async def _on_stt_event(self, ev: STTEvent) -> None:
        if ev.kind == "speech_started":
            # speech soon after a turn ended, its answer still coming (or left to the client):
            # the user went on, the turn ended too early
            self.turn_ends.speech_started(ev.audio_ms, answering=self.response is not None
                                          or not self.options.create_response)
            self.paused_at = None
            await self._discard_held("user_went_on")
            self.pending = TurnTiming(speech_start=self.clock.received_at(ev.audio_ms))
            await self.sink.emit(SpeechStarted(round(ev.audio_ms, 1)))
            if self.options.turn_detection and self.options.interrupt_response:
                self._arm_barge_in(ev.audio_ms)
        elif ev.kind == "speech_stopped":
            self.pending.speech_end = self.clock.received_at(ev.audio_ms)
            self.stopped_at = self.clock.position_ms
            if self.barge_task is not None and not self.barge_task.done():
                self.barge_task.cancel()  # too short to count as an interruption
            await self.sink.emit(SpeechStopped(round(ev.audio_ms, 1)))
        elif ev.kind == "partial":
            if self.pending.first_partial is None:
                self.pending.first_partial = now()
            await self.sink.emit(TranscriptPartial(ev.text))
            if self.paused_at is not None:  # the recognizer revised what was said before the pause
                await self._preempt(ev.text, self.paused_at)
        elif ev.kind == "paused":
            self.paused_at = ev.audio_ms
            await self._preempt(ev.text, ev.audio_ms)
        elif ev.kind == "resumed":
            self.paused_at = None
            await self._discard_held("user_went_on")
        elif ev.kind == "final":
            self.paused_at = None
            await self._on_final(ev)

    async def _on_final(self, ev: STTEvent) -> None:
        text = ev.text.strip()
        if not self.options.turn_detection:  # the client commits: keep the words until it does
            if text:
                self.uncommitted.append(text)
            self._heard_final.set()
            return
        timing, self.pending = self.pending, TurnTiming()
        timing.final = now()
        if timing.speech_end is None:
            timing.speech_end = self.clock.received_at(ev.audio_ms)
        await self.sink.emit(TranscriptFinal(ev.text, round(ev.audio_ms, 1)))
        held, self.held = self.held, None
        full = join_texts([*self.unanswered, text])
        if held is not None and (not text or not self.options.create_response
                                 or normalised(held.user_text) != normalised(full)):
            await self._throw_away(held, "transcript_changed")
            held = None
        if not text:
            return
        self.turn_ends.ended(self.stopped_at, text)
        if not self.options.create_response:  # the client asks for the answer
            self.unanswered.append(text)
            return
        await self.cancel_response("interrupted")
        if held is not None:
            await self._release(held, full, timing)
        else:
            await self._start_response(full, timing)
        self.unanswered.clear()

    # --- preemptive response -------------------------------------------------------------------

    async def _preempt(self, text: str, speech_end_ms: float) -> None:
        """The user paused: start the answer to what they said so far, held. Only while nothing
        else is answering (an answer still playing would change the history it is built on)."""
        text = text.strip()
        if (not self.config.preemptive or not text or self.response is not None
                or not (self.options.turn_detection and self.options.create_response)):
            return
        full = join_texts([*self.unanswered, text])
        if self.held is not None:
            if normalised(self.held.user_text) == normalised(full):
                return
            await self._discard_held("transcript_changed")
        timing = TurnTiming(speech_start=self.pending.speech_start, first_partial=self.pending.first_partial,
                            speech_end=self.clock.received_at(speech_end_ms), preemptive=True)
        self.held = self._new_response(full, timing, held=True)

    async def _release(self, resp: Response, user_text: str, timing: TurnTiming) -> None:
        """The final transcript says what `resp` was built on: it becomes the running response,
        what it held goes out at once, and the rest follows live."""
        t = resp.timing
        t.speech_start, t.first_partial, t.final = timing.speech_start, timing.first_partial, timing.final
        t.speech_end = timing.speech_end or t.speech_end
        resp.user_text = user_text
        layout = self.conversation.layout(resp.id)  # truncation can find it from now on
        layout.extend(resp.layout)
        resp.layout = layout
        self.response = resp
        metrics.PREEMPTIVE.labels("used", "").inc()
        log.info("preemptive response used", extra={"session_id": self.id, "response_id": resp.id})
        await resp.gate.release(user_text)

    async def _discard_held(self, reason: str) -> None:
        held, self.held = self.held, None
        if held is not None:
            await self._throw_away(held, reason)

    async def _throw_away(self, resp: Response, reason: str) -> None:
        """A held response nobody will hear: abort its LLM request and TTS, count the waste."""
        if resp.task is not None:
            resp.task.cancel()
            with contextlib.suppress(BaseException):
                await resp.task
        metrics.PREEMPTIVE.labels("discarded", reason).inc()
        metrics.PREEMPTIVE_DISCARDED_LLM_CHARS.inc(len(resp.text))
        metrics.PREEMPTIVE_DISCARDED_TTS_SECONDS.inc(resp.samples / self.output_sample_rate)
        log.info("preemptive response discarded", extra={"session_id": self.id, "response_id": resp.id,
                                                        "reason": reason})

    def _arm_barge_in(self, onset_ms: float) -> None:
        if self.response is None:
            return
        heard_ms = self.clock.position_ms - onset_ms
        wait_s = max(0.0, self.config.barge_in_min_speech_ms - heard_ms) / 1000

        async def barge_in() -> None:
            if wait_s:
                await asyncio.sleep(wait_s)
            await self.cancel_response("barge_in")

        self.barge_task = asyncio.create_task(barge_in(), name=f"barge-in-{self.id}")

    # --- response side -----------------------------------------------------------------------

    async def _start_response(self, user_text: str, timing: TurnTiming) -> str:
        return self._new_response(user_text, timing, held=False).id

    def _new_response(self, user_text: str, timing: TurnTiming, *, held: bool,
                      tools: ResponseTools | None = None) -> Response:
        self.turns += 1
        tools = tools or ResponseTools(tuple(self.options.tools), self.options.tool_choice,
                                       self.options.parallel_tool_calls)
        resp = Response(id=f"{self.id}-{self.turns}", user_text=user_text, timing=timing,
                        gate=Gate(self.sink.emit, timing, held=held), tools=tools)
        if not held:
            resp.layout = self.conversation.layout(resp.id)
            self.response = resp
        resp.task = asyncio.create_task(self._run_response(resp), name=f"response-{resp.id}")
        return resp

    async def _chat(self, resp: Response) -> list[ChatMessage]:
        messages = [ChatMessage("system", self.options.system_prompt)]
        if self.options.use_rag and self.retriever is not None and resp.user_text:
            try:
                resp.sources = await self.retriever.search(resp.user_text)
            except MonolithError as exc:
                log.warning("retrieval skipped: %s", exc.message, extra={"session_id": self.id})
            if resp.sources:
                messages.append(ChatMessage("system", context_message(resp.sources)))
        messages.extend(self.conversation.prompt())
        if resp.user_text:
            messages.append(ChatMessage("user", resp.user_text))
        return messages

    async def _run_response(self, resp: Response) -> None:
        request_id_var.set(resp.id)  # this task's own context: its logs and provider calls carry it
        try:
            messages = await self._chat(resp)
            await resp.emit(ResponseStarted(resp.id, resp.user_text))
            await self.speaker.answer(resp, messages, self.options)
            await resp.gate.released.wait()  # a held response ends once it is released (or is cancelled)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not isinstance(exc, MonolithError):
                log.exception("response failed", extra={"session_id": self.id, "response_id": resp.id})
            if resp.gate.held:  # never heard: the end of the turn starts afresh
                if self.held is resp:
                    self.held = None
                metrics.PREEMPTIVE.labels("discarded", "failed").inc()
                return
            # Whatever failed, the response ends here: the client hears why, the session is free
            # for the next turn (a wedged response would hold its slot and dodge the idle timeout).
            self._forget(resp)
            metrics.TURNS.labels("failed").inc()
            await resp.emit(SessionError(exc, response_id=resp.id))
            return
        self._forget(resp)
        spoken = join_texts(resp.spoken)
        self._remember(resp, spoken)
        await resp.emit(ResponseDone(resp.id, spoken, tuple(resp.sources)))
        await self.speaker.report(resp, self.id)
        if resp.tools.answer_after and self.response is None and not self.closed:  # a tool's result came meanwhile
            await self.create_response()

    def _forget(self, resp: Response) -> None:
        """Forget `resp` as the running response, unless a newer one has replaced it."""
        if self.response is resp:
            self.response = None

    def _remember(self, resp: Response, spoken: str) -> None:
        self.conversation.remember(resp.user_text, resp.id, spoken, resp.tools.calls, resp.tools.results)

