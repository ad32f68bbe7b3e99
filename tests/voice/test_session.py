"""VoiceSession as a spec, driven directly: no server, no socket, no real-time pacing. Fakes
subclass the real provider bases; the test decides when tokens arrive and what the STT hears."""

from __future__ import annotations

import asyncio

import pytest

from monolith.config import VoiceConfig
from monolith.errors import InvalidRequest
from monolith.providers.llm import SamplingOptions
from monolith.providers.mock_llm import MockLLM
from monolith.registry import Registry
from monolith.scheduler.placement import Inventory, build_plan
from monolith.voice.events import (
    ResponseAudio,
    ResponseAudioStarted,
    ResponseCancelled,
    ResponseDone,
    ResponseStarted,
    ResponseTextDelta,
    ServerEvent,
    SessionCreated,
    SessionError,
    SessionUpdated,
    SpeechStopped,
    TranscriptFinal,
    TurnMetrics,
)
from monolith.voice.options import OptionsUpdate
from monolith.voice.session import VoiceSession

from ..conftest import real_llm_settings
from ..fakes import FakeRealLLM, ScriptedSTT, StepLLM, ToneTTS, llm_builder

REPLY = ["Hello", " there", ".", " How", " are", " you", "?"]


class Collect:
    """An OutputSink that keeps what the session emits."""

    def __init__(self) -> None:
        self.events: list[ServerEvent] = []
        self.arrived = asyncio.Event()

    async def emit(self, event: ServerEvent) -> None:
        self.events.append(event)
        self.arrived.set()

    def of(self, kind: type) -> list[ServerEvent]:
        return [e for e in self.events if isinstance(e, kind)]

    def kinds(self) -> list[str]:
        return [type(e).__name__ for e in self.events if not isinstance(e, ResponseAudio)]

    async def until(self, kind: type, count: int = 1, timeout: float = 5.0) -> ServerEvent:
        async def wait() -> ServerEvent:
            while len(self.of(kind)) < count:
                self.arrived.clear()
                await self.arrived.wait()
            return self.of(kind)[count - 1]

        return await asyncio.wait_for(wait(), timeout)


def make_session(llm: object, tts: object | None = None, stt: ScriptedSTT | None = None,
                 **voice: object) -> tuple[VoiceSession, Collect, ScriptedSTT]:
    sink = Collect()
    stt = stt or ScriptedSTT()
    config = VoiceConfig(**{"chunk_min_chars": 4, "barge_in_min_speech_ms": 200.0, **voice})  # type: ignore[arg-type]
    session = VoiceSession(
        session_id="s1", config=config, llm=llm, stt=stt, tts=tts or ToneTTS(), sink=sink,  # type: ignore[arg-type]
        output_sample_rate=16000, sampling=SamplingOptions(max_tokens=64),
    )
    return session, sink, stt


async def started(**kwargs: object) -> tuple[VoiceSession, Collect, ScriptedSTT]:
    session, sink, stt = make_session(**kwargs)  # type: ignore[arg-type]
    await session.start()
    return session, sink, stt


async def test_a_typed_turn_streams_text_then_audio_then_done_then_metrics() -> None:
    session, sink, _ = await started(llm=StepLLM(REPLY))
    assert isinstance(sink.events[0], SessionCreated)
    await session.on_text("Hi!")
    await sink.until(TurnMetrics)
    kinds = sink.kinds()
    assert kinds[:3] == ["SessionCreated", "ResponseStarted", "ResponseTextDelta"]
    assert kinds.index("ResponseAudioStarted") < kinds.index("ResponseDone") < kinds.index("TurnMetrics")
    assert "".join(e.delta for e in sink.of(ResponseTextDelta)) == "Hello there. How are you?"  # type: ignore[attr-defined]
    done = sink.of(ResponseDone)[0]
    assert done.text == "Hello there. How are you?"  # type: ignore[attr-defined]
    assert sink.of(ResponseAudio) and not session.busy
    assert [m.content for m in session.history] == ["Hi!", "Hello there. How are you?"]
    await session.close()


async def test_a_spoken_turn_goes_from_speech_to_a_response() -> None:
    session, sink, stt = await started(llm=StepLLM(["Fine", "."]))
    await session.on_audio(bytes(3200))  # 100 ms of silence: counted by the clock
    stt.stream.say("speech_started", audio_ms=20.0)
    stt.stream.say("partial", "how are", audio_ms=300.0)
    stt.stream.say("speech_stopped", audio_ms=900.0)
    stt.stream.say("final", "how are you", audio_ms=900.0)
    await sink.until(ResponseDone)
    assert sink.kinds()[1:6] == ["SpeechStarted", "TranscriptPartial", "SpeechStopped", "TranscriptFinal",
                                 "ResponseStarted"]
    assert sink.of(TranscriptFinal)[0].text == "how are you"  # type: ignore[attr-defined]
    assert stt.stream.fed_samples == 1600
    await session.close()


@pytest.mark.parametrize("fail", ["before_first", "mid_stream", "unicode"])
async def test_an_llm_failure_ends_the_response_with_an_error_and_frees_the_session(fail: str) -> None:
    llm = StepLLM(REPLY, fail=fail)
    session, sink, _ = await started(llm=llm)
    await session.on_text("Hi")
    error = await sink.until(SessionError)
    assert isinstance(error, SessionError) and error.response_id == "s1-1"
    assert not session.busy  # a wedged session would never idle out and would hold its slot
    assert not sink.of(ResponseDone)
    llm.fail = None
    await session.on_text("Again")  # the next turn works
    done = await sink.until(ResponseDone)
    assert done.text == "Hello there. How are you?"  # type: ignore[attr-defined]
    await session.close()


async def test_a_tts_failure_ends_the_response_with_an_error() -> None:
    session, sink, _ = await started(llm=StepLLM(REPLY), tts=ToneTTS(fail="before_first"))
    await session.on_text("Hi")
    error = await sink.until(SessionError)
    assert "vocoder exploded" in str(error.error)  # type: ignore[attr-defined]
    assert not session.busy
    await session.close()


async def test_a_hanging_llm_is_cancelled_on_request_and_its_stream_closed() -> None:
    llm = StepLLM(REPLY, fail="hang")
    session, sink, _ = await started(llm=llm)
    await session.on_text("Hi")
    await sink.until(ResponseStarted)
    assert await session.cancel_response("client_cancel")
    cancelled = await sink.until(ResponseCancelled)
    assert cancelled.reason == "client_cancel" and cancelled.spoken_text == ""  # type: ignore[attr-defined]
    assert llm.aborted == ["s1-1"] and llm.running_requests() == 0
    await session.close()


async def test_barge_in_cancels_and_history_keeps_only_what_was_heard() -> None:
    llm = StepLLM(["First sentence here.", " Second one follows.", " Third."], free_running=False)
    session, sink, stt = await started(llm=llm)
    await session.on_text("Tell me three things")
    llm.release(2)  # the first sentence is complete once the next token shows it ended: spoken
    await sink.until(ResponseAudioStarted)
    await session.on_audio(bytes(2 * 16000 * 3 // 10))  # 300 ms heard: past barge_in_min_speech_ms
    stt.stream.say("speech_started", audio_ms=0.0)
    cancelled = await sink.until(ResponseCancelled)
    assert cancelled.reason == "barge_in"  # type: ignore[attr-defined]
    assert cancelled.spoken_text == "First sentence here."  # type: ignore[attr-defined]
    assert [m.content for m in session.history] == ["Tell me three things", "First sentence here."]
    assert llm.aborted == ["s1-1"]
    await session.close()


async def test_a_cough_cancels_nothing() -> None:
    llm = StepLLM(["Long answer.", " More.", " Done."], free_running=False)
    session, sink, stt = await started(llm=llm)
    await session.on_text("Hi")
    llm.release(2)
    await sink.until(ResponseAudioStarted)
    stt.stream.say("speech_started", audio_ms=0.0)  # nothing heard yet: barge-in waits 200 ms
    stt.stream.say("speech_stopped", audio_ms=80.0)  # ...and the sound stops first
    await sink.until(SpeechStopped)
    await asyncio.sleep(0.3)
    assert not sink.of(ResponseCancelled) and session.busy
    llm.release()
    await sink.until(ResponseDone)
    await session.close()


async def test_update_checks_everything_before_changing_anything() -> None:
    session, sink, stt = await started(llm=StepLLM(REPLY))
    with pytest.raises(InvalidRequest, match="unknown voice 'bass'") as err:
        await session.update(OptionsUpdate(voice="bass", system_prompt="changed"))
    assert err.value.code == "unknown_voice"
    assert session.options.system_prompt != "changed"
    await session.update(OptionsUpdate(voice="alto", input_sample_rate=24000))
    assert sink.of(SessionUpdated)[-1].options["voice"] == "alto"  # type: ignore[attr-defined]
    assert len(stt.streams) == 2 and stt.streams[0].closed and stt.stream.sample_rate == 24000
    await session.close()


async def test_close_leaves_no_task_and_no_stream() -> None:
    llm = StepLLM(REPLY, fail="hang")
    session, sink, stt = await started(llm=llm)
    before = {t for t in asyncio.all_tasks() if not t.done()}
    await session.on_text("Hi")
    await sink.until(ResponseStarted)
    await session.close()
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() if not t.done()} - before
    assert not [t for t in left if t is not asyncio.current_task()]
    assert stt.stream.closed and llm.running_requests() == 0


async def test_a_real_provider_that_failed_to_load_is_stood_in_for_by_its_mock() -> None:
    settings = real_llm_settings()
    registry = Registry(settings, build_plan(settings, Inventory()),
                        builders={"llm": llm_builder(FakeRealLLM(fail_load=True))})
    await registry.load_all()
    try:
        session, sink, _ = await started(llm=registry.llm)
        await session.on_text("echo me")
        done = await sink.until(ResponseDone)
        assert done.text == "echo me"  # type: ignore[attr-defined]  # the mock LLM echoes
        assert isinstance(registry.slots["llm"].primary, MockLLM)
        await session.close()
    finally:
        await registry.close()


