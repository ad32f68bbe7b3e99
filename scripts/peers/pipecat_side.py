"""The Pipecat side of scripts/bench_peers.py: N sessions, one Pipecat pipeline each, in one
process, fed the same audio as monolith (speech then silence, 20 ms frames at real time) through
Pipecat's own transport base classes. Runs in the Pipecat venv (the driver starts it, with the
repository and scripts/ on PYTHONPATH); prints one JSON object on its last stdout line.

The providers are monolith's own mocks (monolith.providers.mock_llm / mock_tts, imported from this
repository, with the config values the driver read) wrapped as Pipecat services, so both sides
wait on the same pacing. The STT is monolith's mock STT's behaviour as a Pipecat STT service;
Pipecat's VAD decides the segments, with monolith's energy rule.

Pipeline per session (Pipecat's best settings found, see docs/benchmarks.md):

    MemInputTransport -> VADProcessor(EnergyVADAnalyzer) -> MockSTTService(audio_passthrough=False)
      -> LLMUserAggregator(turn strategies) -> MockLLMService -> MockTTSService(SENTENCE)
      -> MemOutputTransport -> LLMAssistantAggregator

`--layout aggregator` is Pipecat 1.x's documented idiom instead (the VAD inside the user
aggregator, so the STT passes every input frame on through the whole pipeline).

Figures per turn (the driver's clock is this process's):
  e2e_ms           last voiced frame handed to the input transport -> first audio frame the
                   output transport writes (write_audio_frame: where a real transport sends)
  provider_ms      LLM request -> the token that completed the first TTS text, plus run_tts
                   called -> first audio yielded (both measured inside the mocks)
  barge_in_ms      the frame completing barge_in_min_speech_ms of speech handed over ->
                   InterruptionFrame at the output transport (its queued audio is dropped there)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.metadata
import itertools
import json
import os
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parents[1])]

from loguru import logger  # noqa: E402
from pipecat.audio.vad.vad_analyzer import VADAnalyzer, VADParams, VADState  # noqa: E402
from pipecat.frames.frames import (  # noqa: E402
    BotStoppedSpeakingFrame,
    CancelFrame,
    EndFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    InterruptionFrame,
    LLMContextFrame,
    LLMFullResponseEndFrame,
    LLMFullResponseStartFrame,
    LLMMessagesAppendFrame,
    OutputAudioRawFrame,
    StartFrame,
    TranscriptionFrame,
    TTSAudioRawFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline  # noqa: E402
from pipecat.pipeline.worker import PipelineParams, PipelineWorker  # noqa: E402
from pipecat.processors.aggregators.llm_context import LLMContext  # noqa: E402
from pipecat.processors.aggregators.llm_response_universal import (  # noqa: E402
    LLMContextAggregatorPair,
    LLMUserAggregatorParams,
)
from pipecat.processors.audio.vad_processor import VADProcessor  # noqa: E402
from pipecat.processors.frame_processor import FrameDirection  # noqa: E402
from pipecat.services.llm_service import LLMService  # noqa: E402
from pipecat.services.settings import LLMSettings, STTSettings, TTSSettings  # noqa: E402
from pipecat.services.stt_service import STTService  # noqa: E402
from pipecat.services.tts_service import TextAggregationMode, TTSService  # noqa: E402
from pipecat.transports.base_input import BaseInputTransport  # noqa: E402
from pipecat.transports.base_output import BaseOutputTransport  # noqa: E402
from pipecat.transports.base_transport import TransportParams  # noqa: E402
from pipecat.turns.user_start import TranscriptionUserTurnStartStrategy, VADUserTurnStartStrategy  # noqa: E402
from pipecat.turns.user_stop import SpeechTimeoutUserTurnStopStrategy  # noqa: E402
from pipecat.turns.user_turn_strategies import UserTurnStrategies  # noqa: E402
from pipecat.utils.time import time_now_iso8601  # noqa: E402
from pipecat.workers.runner import WorkerRunner  # noqa: E402

from monolith.config import MockLLMConfig, MockTTSConfig  # noqa: E402
from monolith.providers.llm import ChatMessage, SamplingOptions  # noqa: E402
from monolith.providers.mock_llm import MockLLM  # noqa: E402
from monolith.providers.mock_stt import FULL_TRANSCRIPT_AFTER_MS, PARTIAL_EVERY_MS  # noqa: E402
from monolith.providers.mock_tts import MockTTS  # noqa: E402
from monolith.providers.tts import to_pcm16  # noqa: E402
from peers.common import (  # noqa: E402
    FRAME_S,
    LONG_ANSWER,
    RATE,
    SILENCE_FRAME,
    LagTicker,
    TurnRecord,
    Work,
    barge_ref_frame,
    figures,
    proc_cpu_s,
    proc_status,
    process_figures,
    reset_peak_rss,
    rms,
    speech_frames,
)

logger.remove()
logger.add(sys.stderr, level=os.environ.get("PIPECAT_LOG_LEVEL", "ERROR"))


def now() -> float:
    return time.perf_counter()


class EnergyVADAnalyzer(VADAnalyzer):  # type: ignore[misc]
    """A 20 ms frame is speech when its RMS reaches [stt.mock] energy_threshold: monolith's
    EnergySegmenter rule inside Pipecat's VADAnalyzer state machine (start_secs of voiced frames
    before SPEAKING, stop_secs of silent ones before QUIET). No loudness gate (min_volume is
    Pipecat's, the mock has none), and the analysis runs inline rather than on the analyzer's
    one-thread executor: a 320-sample RMS needs no thread (Silero does). --vad-executor puts the
    executor back."""

    def __init__(self, *, threshold: float, inline: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._threshold = threshold
        self._inline = inline

    def num_frames_required(self) -> int:
        return int(self.sample_rate * FRAME_S)

    def voice_confidence(self, buffer: bytes) -> float:
        return 1.0 if rms(buffer) >= self._threshold else 0.0

    def _get_smoothed_volume(self, audio: bytes) -> float:
        return 1.0

    async def analyze_audio(self, buffer: bytes) -> VADState:
        if self._inline:
            return self._run_analyzer(buffer)
        return await super().analyze_audio(buffer)


class Response:
    """Timestamps of one response, set by the mocks and the output transport."""

    def __init__(self) -> None:
        self.llm_request: float | None = None
        self.token_times: list[float] = []
        self.first_chunk_ready: float | None = None
        self.tts_request: float | None = None
        self.tts_first_audio: float | None = None
        self.first_audio_out: float | None = None
        self.audio_s = 0.0  # seconds of audio the output transport wrote

    def provider_ms(self) -> float | None:
        if (self.llm_request is None or self.first_chunk_ready is None or self.tts_request is None
                or self.tts_first_audio is None):
            return None
        return ((self.first_chunk_ready - self.llm_request) + (self.tts_first_audio - self.tts_request)) * 1000


class MockSTTService(STTService):  # type: ignore[misc]
    """monolith's MockSTTStream as a streaming Pipecat STT: partials every 200 ms of speech and the
    configured transcript as a finalized TranscriptionFrame, each decode_delay_ms after the audio
    that produced it. Pipecat's VAD frames (VADUserStarted/StoppedSpeakingFrame) segment it."""

    def __init__(self, work: Work, **kwargs: Any) -> None:
        super().__init__(ttfs_p99_latency=work.stt_decode_delay_ms / 1000,
                         settings=STTSettings(model=None, language=None), **kwargs)
        self.work = work
        self._speaking = False
        self._speech_ms = 0.0
        self._last_partial_at = 0.0
        self._last_partial = ""
        self._out: asyncio.Queue[Frame] = asyncio.Queue()
        self._emit_task: asyncio.Task[None] | None = None

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        self._emit_task = self.create_task(self._emitter())

    async def stop(self, frame: EndFrame) -> None:
        await super().stop(frame)
        await self._stop_emitter()

    async def cancel(self, frame: CancelFrame) -> None:
        await super().cancel(frame)
        await self._stop_emitter()

    async def _stop_emitter(self) -> None:
        if self._emit_task:
            await self.cancel_task(self._emit_task)
            self._emit_task = None

    async def _emitter(self) -> None:
        while True:
            await self.push_frame(await self._out.get())

    def _later(self, frame: Frame) -> None:
        asyncio.get_running_loop().call_later(self.work.stt_decode_delay_ms / 1000, self._out.put_nowait, frame)

    async def run_stt(self, audio: bytes) -> AsyncGenerator[Frame | None, None]:
        if self._speaking:
            self._speech_ms += len(audio) / 2 / self.sample_rate * 1000
            if self._speech_ms - self._last_partial_at >= PARTIAL_EVERY_MS:
                self._last_partial_at = self._speech_ms
                full = self.work.stt_transcript
                text = full[: max(1, int(len(full) * min(1.0, self._speech_ms / FULL_TRANSCRIPT_AFTER_MS)))]
                if text != self._last_partial:
                    self._last_partial = text
                    self._later(InterimTranscriptionFrame(text=text, user_id="", timestamp=time_now_iso8601()))
        yield None

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if isinstance(frame, VADUserStartedSpeakingFrame):
            self._speaking = True
            self._speech_ms = self._last_partial_at = self.work.vad_min_speech_ms
            self._last_partial = ""
        elif isinstance(frame, VADUserStoppedSpeakingFrame) and self._speaking:
            self._speaking = False
            self._later(TranscriptionFrame(text=self.work.stt_transcript, user_id="",
                                           timestamp=time_now_iso8601(), finalized=True))


class MockLLMService(LLMService):  # type: ignore[misc]
    """monolith's MockLLM (it echoes the last user message, first_token_ms then tokens_per_second)
    as a Pipecat LLM service, between LLMFullResponseStart/EndFrame like Pipecat's OpenAI-style
    services. An InterruptionFrame cancels the running completion (Pipecat cancels the process
    task that runs it)."""

    def __init__(self, session: Session, mock: MockLLM, work: Work, **kwargs: Any) -> None:
        super().__init__(settings=LLMSettings(
            model=None, system_instruction=None, temperature=None, max_tokens=None, top_p=None, top_k=None,
            frequency_penalty=None, presence_penalty=None, seed=None, filter_incomplete_user_turns=False,
            user_turn_completion_config=None,
        ), **kwargs)
        self.session, self.mock, self.work = session, mock, work
        self._ids = itertools.count()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if not isinstance(frame, LLMContextFrame):
            await self.push_frame(frame, direction)
            return
        resp = self.session.new_response()
        messages = []
        for m in frame.context.get_messages():
            if isinstance(m, dict) and m.get("role") in ("system", "user", "assistant"):
                content = m.get("content", "")
                if not isinstance(content, str):
                    content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
                messages.append(ChatMessage(m["role"], content))
        try:
            await self.push_frame(LLMFullResponseStartFrame())
            resp.llm_request = now()
            request_id = f"{self.session.name}-llm-{next(self._ids)}"
            async for chunk in self.mock.stream_chat(messages, SamplingOptions(max_tokens=self.work.llm_max_tokens),
                                                     request_id=request_id):
                if chunk.text:
                    resp.token_times.append(now())
                    await self._push_llm_text(chunk.text)
        finally:
            await self.push_frame(LLMFullResponseEndFrame())


class MockTTSService(TTSService):  # type: ignore[misc]
    """monolith's MockTTS (one instance for the process, as monolith has one for the server: with
    [tts] max_batch above 1 its batched decode loop serves every session) as an HTTP-style Pipecat
    TTS service: run_tts yields the audio, the base class opens and closes the audio context and
    pushes TTSStarted/StoppedFrame."""

    def __init__(self, session: Session, mock: MockTTS, work: Work, **kwargs: Any) -> None:
        super().__init__(push_start_frame=True, push_stop_frames=True, sample_rate=work.tts_sample_rate, **kwargs)
        self.session, self.mock, self.work = session, mock, work
        self._first_in_response = True
        self._ids = itertools.count()

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, LLMFullResponseStartFrame):
            self._first_in_response = True
        await super().process_frame(frame, direction)

    async def run_tts(self, text: str, context_id: str) -> AsyncGenerator[Frame, None]:
        resp = self.session.current
        if resp is not None and resp.tts_request is None:
            resp.tts_request = now()
            before = [t for t in resp.token_times if t <= resp.tts_request]
            resp.first_chunk_ready = before[-1] if before else None
        first, self._first_in_response = self._first_in_response, False
        request_id = f"{self.session.name}-tts-{next(self._ids)}"
        async for samples in self.mock.synthesize(text, voice="default", request_id=request_id,
                                                  first_in_response=first):
            if resp is not None and resp.tts_first_audio is None:
                resp.tts_first_audio = now()
            pcm = to_pcm16(samples, self.mock.native_sample_rate, self.work.tts_sample_rate)
            yield TTSAudioRawFrame(audio=pcm, sample_rate=self.work.tts_sample_rate, num_channels=1,
                                   context_id=context_id)


class MemInputTransport(BaseInputTransport):  # type: ignore[misc]
    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)


class MemOutputTransport(BaseOutputTransport):  # type: ignore[misc]
    """write_audio_frame is where a real transport hands audio to the network. pace=True keeps
    Pipecat's WebSocket transports' playback clock (one sleep per chunk: the server holds the
    audio and drops it on interruption); pace=False writes audio as fast as it comes, as monolith
    does (the client plays it and drops it on response.cancelled)."""

    def __init__(self, session: Session, params: TransportParams, pace: bool) -> None:
        super().__init__(params)
        self.session = session
        self.pace = pace
        self._next_send_time = 0.0

    async def start(self, frame: StartFrame) -> None:
        await super().start(frame)
        await self.set_transport_ready(frame)

    async def write_audio_frame(self, frame: OutputAudioRawFrame) -> bool:
        interval = len(frame.audio) / 2 / frame.sample_rate
        self.session.on_audio_out(now(), interval)
        if self.pace:
            t = time.monotonic()
            sleep = max(0.0, self._next_send_time - t)
            await asyncio.sleep(sleep)
            self._next_send_time = (time.monotonic() if sleep == 0 else self._next_send_time) + interval
        return True

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if isinstance(frame, InterruptionFrame):
            self.session.on_interruption(now())
        await super().process_frame(frame, direction)

    async def push_frame(self, frame: Frame, direction: FrameDirection = FrameDirection.DOWNSTREAM) -> None:
        if isinstance(frame, BotStoppedSpeakingFrame) and direction == FrameDirection.DOWNSTREAM:
            self.session.bot_stopped.set()
        await super().push_frame(frame, direction)


class Session:
    """One pipeline, the microphone that feeds it, and the driver of its turns."""

    def __init__(self, name: str, args: argparse.Namespace, work: Work, frames: list[bytes],
                 mocks: tuple[MockLLM, MockTTS], records: list[TurnRecord], delay_s: float) -> None:
        self.name, self.args, self.work, self.frames = name, args, work, frames
        self.records, self.delay_s = records, delay_s
        self.current: Response | None = None
        self.response_started = asyncio.Event()
        self.bot_stopped = asyncio.Event()
        self.interrupted = asyncio.Event()
        self.interruption_t = 0.0
        self.talk = asyncio.Event()
        self.eos_t = 0.0
        self.barge_ref_t = 0.0
        self.started = asyncio.Event()

        vadproc = args.layout == "vadproc"
        self.inp = MemInputTransport(TransportParams(audio_in_enabled=True, audio_in_sample_rate=RATE))
        self.out = MemOutputTransport(self, TransportParams(
            audio_out_enabled=True, audio_out_sample_rate=work.tts_sample_rate, audio_out_end_silence_secs=0,
        ), pace=not args.no_pace)
        # vadproc: a VADProcessor before the STT, which keeps the audio (audio_passthrough=False):
        # each 20 ms frame crosses 3 processors. aggregator: the VAD in the user aggregator, so the
        # STT passes the audio on and every frame crosses the whole pipeline.
        self.stt = MockSTTService(work, audio_passthrough=not vadproc)
        vad = EnergyVADAnalyzer(threshold=work.stt_energy_threshold, inline=not args.vad_executor, sample_rate=RATE,
                                params=VADParams(confidence=0.5, start_secs=work.vad_min_speech_ms / 1000,
                                                 stop_secs=args.vad_stop_secs, min_volume=0.0))
        # The turn ends endpoint_silence_ms after speech, as monolith's does: VAD stop_secs, then
        # the rest as the user-speech timeout (during which the STT already finalises).
        timeout = max(0.0, work.endpoint_silence_ms / 1000 - args.vad_stop_secs)
        context = LLMContext(messages=[{"role": "system", "content": work.system_prompt}])
        self.pair = LLMContextAggregatorPair(context, user_params=LLMUserAggregatorParams(
            vad_analyzer=None if vadproc else vad,
            user_turn_strategies=UserTurnStrategies(
                start=[VADUserTurnStartStrategy(), TranscriptionUserTurnStartStrategy()],
                stop=[SpeechTimeoutUserTurnStopStrategy(user_speech_timeout=timeout)],
            ),
        ))
        llm = MockLLMService(self, mocks[0], work)
        tts = MockTTSService(self, mocks[1], work, settings=TTSSettings(model=None, voice=None, language="ja"),
                             text_aggregation_mode=TextAggregationMode.SENTENCE)
        front = [self.inp, VADProcessor(vad_analyzer=vad), self.stt] if vadproc else [self.inp, self.stt]
        pipeline = Pipeline([*front, self.pair.user(), llm, tts, self.out, self.pair.assistant()])
        self.worker = PipelineWorker(
            pipeline,
            params=PipelineParams(audio_in_sample_rate=RATE, audio_out_sample_rate=work.tts_sample_rate,
                                  enable_metrics=False, enable_usage_metrics=False),
            enable_rtvi=False, enable_turn_tracking=False, idle_timeout_secs=None,
            cancel_on_idle_timeout=False, check_dangling_tasks=False,
        )

        async def on_started(worker: Any, frame: Any) -> None:
            self.started.set()

        self.worker.add_event_handler("on_pipeline_started", on_started)

    def new_response(self) -> Response:
        self.current = Response()
        self.response_started.set()
        return self.current

    def on_audio_out(self, t: float, seconds: float) -> None:
        if self.current is not None:
            if self.current.first_audio_out is None:
                self.current.first_audio_out = t
            self.current.audio_s += seconds

    def on_interruption(self, t: float) -> None:
        self.interruption_t = t
        self.interrupted.set()

    async def _mic(self) -> None:
        next_at = now()
        push: Callable[[InputAudioRawFrame], Awaitable[None]] = self.inp.push_audio_frame
        ref = barge_ref_frame(self.work)
        t = now()
        while True:
            if self.talk.is_set():
                self.talk.clear()
                for i, frame in enumerate(self.frames):
                    await push(InputAudioRawFrame(audio=frame, sample_rate=RATE, num_channels=1))
                    t = now()
                    if i == ref:
                        self.barge_ref_t = t
                    next_at += FRAME_S
                    await asyncio.sleep(max(0.0, next_at - now()))
                self.eos_t = t
            await push(InputAudioRawFrame(audio=SILENCE_FRAME, sample_rate=RATE, num_channels=1))
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - now()))

    async def _answer(self, timeout: float = 60) -> Response:
        """The next response, once it has played (a listener speaks again after the answer)."""
        self.response_started.clear()
        await asyncio.wait_for(self.response_started.wait(), timeout)
        resp = self.current
        assert resp is not None
        while True:
            self.bot_stopped.clear()
            await asyncio.wait_for(self.bot_stopped.wait(), timeout)
            if resp.first_audio_out is not None:
                await asyncio.sleep(max(0.0, resp.first_audio_out + resp.audio_s - now()))
                return resp

    async def run(self, turns: int, barge: int) -> None:
        await asyncio.sleep(self.delay_s)
        runner = WorkerRunner(handle_sigint=False, check_dangling_tasks=False)
        await runner.add_workers(self.worker)
        run_task = asyncio.create_task(runner.run())
        await asyncio.wait_for(self.started.wait(), 30)
        mic = asyncio.create_task(self._mic())
        # The STT finalises at VAD stop_secs + its decode delay; the turn ends at the endpoint:
        # only a decode that outlasts the user-speech timeout is on the critical path.
        stt_on_path = max(0.0, self.args.vad_stop_secs * 1000 + self.work.stt_decode_delay_ms
                          - self.work.endpoint_silence_ms)
        stage = "start"
        try:
            for i in range(turns):
                stage = f"turn {i}"
                self.talk.set()
                resp = await self._answer()
                assert resp.first_audio_out is not None
                self.records.append(TurnRecord("turn", e2e_ms=(resp.first_audio_out - self.eos_t) * 1000,
                                               provider_ms=resp.provider_ms(), stt_on_path_ms=stt_on_path))
            for i in range(barge):
                stage = f"barge-in {i}"
                self.response_started.clear()
                await self.worker.queue_frame(LLMMessagesAppendFrame(
                    messages=[{"role": "user", "content": LONG_ANSWER}], run_llm=True))
                await asyncio.wait_for(self.response_started.wait(), 30)
                long_answer = self.current
                assert long_answer is not None
                while long_answer.first_audio_out is None:
                    await asyncio.sleep(0.001)
                await asyncio.sleep(max(0.0, long_answer.first_audio_out + self.args.barge_after_s - now()))
                self.interrupted.clear()
                self.talk.set()
                await asyncio.wait_for(self.interrupted.wait(), 30)
                self.records.append(TurnRecord("barge", barge_in_ms=(self.interruption_t - self.barge_ref_t) * 1000))
                await self._answer()  # the interrupting speech becomes the next turn
        except Exception as exc:
            raise RuntimeError(f"session {self.name}, {stage}: {exc!r}") from exc
        finally:
            mic.cancel()
            with contextlib.suppress(BaseException):
                await mic
            await self.worker.cancel()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(run_task, 10)


async def feeder_only(sessions: int, stagger_s: float, seconds: float, frames: list[bytes]) -> dict[str, float]:
    """The in-process microphones alone (speech every 4 s, silence otherwise, into a plain queue):
    the share of this process's CPU that is the benchmark feeding Pipecat, not Pipecat."""

    async def one(delay: float) -> None:
        await asyncio.sleep(delay)
        q: asyncio.Queue[InputAudioRawFrame] = asyncio.Queue()

        async def drain() -> None:
            while True:
                await q.get()

        drainer = asyncio.create_task(drain())
        next_at, end, cycle = now(), now() + seconds, int(4.0 / FRAME_S)
        for i in itertools.count():
            if now() >= end:
                break
            k = i % cycle
            await q.put(InputAudioRawFrame(audio=frames[k] if k < len(frames) else SILENCE_FRAME,
                                           sample_rate=RATE, num_channels=1))
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - now()))
        drainer.cancel()

    cpu0, wall0 = proc_cpu_s(), now()
    await asyncio.gather(*(one(stagger_s * i / sessions) for i in range(sessions)))
    return {"seconds": round(now() - wall0, 2), "cpu_share_of_one_core": round((proc_cpu_s() - cpu0) / (now() - wall0), 4)}


async def drive(args: argparse.Namespace, work: Work) -> dict[str, Any]:
    frames = speech_frames(args.clip_s, work.stt_energy_threshold)
    mocks = (
        MockLLM(MockLLMConfig(first_token_ms=work.llm_first_token_ms, tokens_per_second=work.llm_tokens_per_second)),
        MockTTS(MockTTSConfig(first_chunk_ms=work.tts_first_chunk_ms, real_time_factor=work.tts_real_time_factor,
                              batch_cost_exponent=work.tts_batch_cost_exponent), max_batch=work.tts_max_batch),
    )
    await Session("warm", args, work, frames, mocks, [], 0.0).run(1, 1)  # a turn and a barge-in, not measured

    idle_rss_kb = proc_status()["VmRSS"]
    reset_peak_rss()
    lag = LagTicker()
    lag.start()
    cpu0, wall0 = proc_cpu_s(), now()
    records: list[TurnRecord] = []
    sessions = [Session(f"s{i}", args, work, frames, mocks, records, args.stagger_s * i / args.sessions)
                for i in range(args.sessions)]
    outcomes = await asyncio.gather(*(s.run(args.turns, args.barge) for s in sessions), return_exceptions=True)
    cpu1, wall1 = proc_cpu_s(), now()
    lag_figures = lag.stop()
    peak_rss_kb = proc_status()["VmHWM"]
    errors = [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]
    feeder = await feeder_only(args.sessions, args.stagger_s, args.feeder_s, frames) if args.feeder_s > 0 else None
    return {
        "system": "pipecat", "version": importlib.metadata.version("pipecat-ai"),
        "sessions": args.sessions, "wall_s": round(wall1 - wall0, 2),
        "completed": {"turns": sum(r.kind == "turn" for r in records),
                      "barge_ins": sum(r.kind == "barge" for r in records)},
        "errors": errors[:5],
        "settings": {
            "layout": args.layout,
            "vad": (f"EnergyVADAnalyzer(rms >= {work.stt_energy_threshold}), VADParams(confidence=0.5, "
                    f"start_secs={work.vad_min_speech_ms / 1000:g}, stop_secs={args.vad_stop_secs:g}, min_volume=0), "
                    f"{'executor thread' if args.vad_executor else 'inline'}"),
            "turn_start": "VADUserTurnStartStrategy (interrupts), TranscriptionUserTurnStartStrategy",
            "turn_stop": ("SpeechTimeoutUserTurnStopStrategy(user_speech_timeout="
                          f"{max(0.0, work.endpoint_silence_ms / 1000 - args.vad_stop_secs):g})"),
            "tts": "TextAggregationMode.SENTENCE, push_start_frame/push_stop_frames",
            "output_paced": not args.no_pace, "loop": args.loop,
            "worker": "enable_rtvi=False, enable_turn_tracking=False, enable_metrics=False, idle_timeout_secs=None",
            "log_level": os.environ.get("PIPECAT_LOG_LEVEL", "ERROR"),
        },
        "figures": figures(records, work.endpoint_silence_ms),
        "event_loop_lag": lag_figures,
        "process": {**process_figures(cpu_s=cpu1 - cpu0, wall_s=wall1 - wall0, idle_rss_kb=idle_rss_kb,
                                      peak_rss_kb=peak_rss_kb, sessions=args.sessions),
                    "feeder_only": feeder,
                    "note": "one process: the pipelines and the microphones that feed them"},
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", required=True, help="the mock providers' values as JSON (peers.common.Work)")
    p.add_argument("--sessions", type=int, default=1)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--barge", type=int, default=3)
    p.add_argument("--barge-after-s", type=float, default=0.25, help="start talking this long after first audio")
    p.add_argument("--clip-s", type=float, default=1.5, help="seconds of speech per turn")
    p.add_argument("--stagger-s", type=float, default=0.0, help="spread session starts over this many seconds")
    p.add_argument("--feeder-s", type=float, default=5.0, help="then time the microphones alone this long (0: not)")
    p.add_argument("--vad-stop-secs", type=float, default=0.2,
                   help="VAD stop_secs; the user-speech timeout makes up the rest of the endpoint silence")
    p.add_argument("--vad-executor", action="store_true", help="the VAD on VADAnalyzer's executor thread (default)")
    p.add_argument("--no-pace", action="store_true", help="write output audio as it comes (no playback clock)")
    p.add_argument("--layout", choices=["vadproc", "aggregator"], default="vadproc",
                   help="the VAD in a VADProcessor before the STT, or in the user aggregator (1.x idiom)")
    p.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop",
                   help="event loop (uvicorn runs monolith on uvloop when installed)")
    args = p.parse_args()
    work = Work.from_json(args.work)
    if args.loop == "uvloop":
        import uvloop

        out = uvloop.run(drive(args, work))
    else:
        out = asyncio.run(drive(args, work))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
