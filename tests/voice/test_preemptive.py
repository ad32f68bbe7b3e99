"""Preemptive response, driven directly: the STT says the user paused, the answer starts unheard;
the final transcript releases it or throws it away. What is asserted is what the client gets
(its events and audio), what the history keeps, the engine requests aborted, and /metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY

from monolith.voice.events import (
    ResponseAudio,
    ResponseAudioStarted,
    ResponseCancelled,
    ResponseDone,
    ResponseStarted,
    SpeechStarted,
    TranscriptPartial,
    TurnMetrics,
)

from ..fakes import ScriptedSTT, StepLLM, ToneTTS
from .conftest import LiveServer, connect, silence, speech
from .test_session import Collect, started

REPLY = ["Fine", ".", " And", " you", "?"]
SECOND = 16000 * 2  # bytes of PCM16 at 16 kHz


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    async def wait() -> None:
        while not condition():
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), timeout)


def response_ids(sink: Collect) -> set[str]:
    return {e.response_id for e in sink.events if hasattr(e, "response_id") and e.response_id is not None}  # type: ignore[attr-defined]


async def pause(stt: ScriptedSTT, text: str, speech_end_ms: float = 900.0) -> None:
    stt.stream.say("speech_started", audio_ms=20.0)
    stt.stream.say("partial", text[:4], audio_ms=300.0)
    stt.stream.say("paused", text, audio_ms=speech_end_ms)


def end_turn(stt: ScriptedSTT, text: str, speech_end_ms: float = 900.0) -> None:
    stt.stream.say("speech_stopped", audio_ms=speech_end_ms)
    stt.stream.say("final", text, audio_ms=speech_end_ms)


async def test_without_preemptive_the_stt_is_asked_for_no_pauses_and_a_pause_starts_nothing() -> None:
    llm = StepLLM(REPLY)
    session, sink, stt = await started(llm=llm)
    assert stt.end_of_turn is None  # the STT's own fixed rule, exactly as before
    await pause(stt, "how are you")
    await sink.until(TranscriptPartial)
    await asyncio.sleep(0.05)
    assert llm.seen == [] and not session.busy
    await session.close()


async def test_a_pause_starts_the_answer_unheard_and_a_matching_final_releases_it_at_once() -> None:
    llm, tts = StepLLM(REPLY), ToneTTS()
    session, sink, stt = await started(llm=llm, tts=tts, preemptive=True)
    assert stt.end_of_turn is not None and stt.end_of_turn.pause_ms == 200.0
    used = sample("monolith_preemptive_responses_total", outcome="used", reason="")
    await session.on_audio(bytes(SECOND // 10))
    await pause(stt, "how are you")
    await until(lambda: tts.rendered == ["Fine."])  # the first chunk is spoken before the turn ends...
    await asyncio.sleep(0.05)
    assert sink.kinds()[1:] == ["SpeechStarted", "TranscriptPartial"]  # ...and none of it has gone out
    assert not sink.of(ResponseAudio) and not session.busy
    assert tts.rendered == ["Fine."]  # later chunks wait for the release

    end_turn(stt, "How are you?")  # the same words, punctuated
    await sink.until(TurnMetrics)
    kinds = sink.kinds()
    assert kinds[3:6] == ["SpeechStopped", "TranscriptFinal", "ResponseStarted"]
    assert kinds.index("ResponseAudioStarted") < kinds.index("ResponseDone") < kinds.index("TurnMetrics")
    assert sink.of(ResponseStarted)[0].user_text == "How are you?"  # type: ignore[attr-defined]
    assert sink.of(ResponseDone)[0].text == "Fine. And you?"  # type: ignore[attr-defined]
    assert len(llm.seen) == 1 and llm.seen[0][-1].content == "how are you"  # one LLM request, from the pause
    figures = sink.of(TurnMetrics)[0].figures  # type: ignore[attr-defined]
    assert figures["preemptive"] is True and figures["end_of_speech_to_first_audio_ms"] is not None
    assert figures["pipeline_overhead_ms"] is None
    assert [m.content for m in session.history] == ["How are you?", "Fine. And you?"]
    assert sample("monolith_preemptive_responses_total", outcome="used", reason="") == used + 1
    await session.close()


async def test_a_final_that_differs_throws_the_held_answer_away_inside_the_engine() -> None:
    llm, tts = StepLLM(REPLY, free_running=False), ToneTTS()
    session, sink, stt = await started(llm=llm, tts=tts, preemptive=True)
    thrown = sample("monolith_preemptive_responses_total", outcome="discarded", reason="transcript_changed")
    await pause(stt, "how are")
    await until(lambda: llm.running_requests() == 1)
    llm.release(3)  # "Fine. And": the first chunk is rendered, unheard
    await until(lambda: tts.rendered == ["Fine."])

    end_turn(stt, "how are you doing")
    await until(lambda: "s1-1" in llm.aborted)  # the held request, aborted in the engine
    llm.release(len(REPLY))
    done = await sink.until(ResponseDone)
    await sink.until(TurnMetrics)
    assert done.response_id == "s1-2" and response_ids(sink) == {"s1-2"}  # type: ignore[attr-defined]
    assert sink.of(ResponseStarted)[0].user_text == "how are you doing"  # type: ignore[attr-defined]
    assert sink.of(TurnMetrics)[0].figures["preemptive"] is False  # type: ignore[attr-defined]
    samples = sum(len(e.pcm) // 2 for e in sink.of(ResponseAudio))  # type: ignore[attr-defined]
    assert samples == 160 * len("Fine." + "And you?")  # the new answer's two chunks, nothing more
    assert [m.content for m in session.history] == ["how are you doing", "Fine. And you?"]
    assert sample("monolith_preemptive_responses_total", outcome="discarded", reason="transcript_changed") == thrown + 1
    await session.close()


@pytest.mark.parametrize("went_on", ["resumed", "speech_started"])
async def test_the_user_going_on_throws_the_held_answer_away_and_counts_the_waste(went_on: str) -> None:
    llm, tts = StepLLM(REPLY, free_running=False), ToneTTS()
    session, sink, stt = await started(llm=llm, tts=tts, preemptive=True)
    chars = sample("monolith_preemptive_discarded_llm_chars_total")
    seconds = sample("monolith_preemptive_discarded_tts_seconds_total")
    await pause(stt, "tell me")
    await until(lambda: llm.running_requests() == 1)
    llm.release(3)
    await until(lambda: tts.rendered == ["Fine."])

    stt.stream.say(went_on, audio_ms=1200.0)  # before the end-of-turn silence ran out
    await until(lambda: llm.aborted == ["s1-1"])
    assert llm.running_requests() == 0 and tts.running_requests() == 0
    assert sample("monolith_preemptive_discarded_llm_chars_total") == chars + len("Fine. And")
    assert sample("monolith_preemptive_discarded_tts_seconds_total") == pytest.approx(seconds + 0.05)  # "Fine."

    stt.stream.say("paused", "tell me a joke", audio_ms=2000.0)
    await until(lambda: llm.running_requests() == 1)
    end_turn(stt, "Tell me a joke.", 2000.0)
    llm.release(len(REPLY))
    await sink.until(TurnMetrics)
    assert response_ids(sink) == {"s1-2"}  # nothing of the thrown-away answer reached the client
    assert sink.of(TurnMetrics)[0].figures["preemptive"] is True  # type: ignore[attr-defined]
    assert [m.content for m in session.history] == ["Tell me a joke.", "Fine. And you?"]
    await session.close()


async def test_a_later_transcript_of_the_same_pause_restarts_the_held_answer() -> None:
    llm = StepLLM(REPLY, free_running=False)
    session, sink, stt = await started(llm=llm, preemptive=True)
    await pause(stt, "what is the")
    await until(lambda: llm.running_requests() == 1)
    stt.stream.say("partial", "what is the time", audio_ms=1100.0)  # the recognizer caught up
    await until(lambda: llm.aborted == ["s1-1"] and llm.running_requests() == 1)
    end_turn(stt, "What is the time?")
    llm.release(len(REPLY))
    await sink.until(TurnMetrics)
    assert response_ids(sink) == {"s1-2"} and sink.of(TurnMetrics)[0].figures["preemptive"] is True  # type: ignore[attr-defined]
    await session.close()


async def test_barge_in_during_a_released_preemptive_answer_is_an_ordinary_barge_in() -> None:
    llm = StepLLM(["First sentence here.", " Second one follows.", " Third."], free_running=False)
    session, sink, stt = await started(llm=llm, preemptive=True)
    await pause(stt, "tell me three things")
    await until(lambda: llm.running_requests() == 1)
    llm.release(2)
    end_turn(stt, "Tell me three things")
    await sink.until(ResponseAudioStarted)
    assert session.busy
    await session.on_audio(bytes(SECOND * 3 // 10))  # 300 ms heard: past barge_in_min_speech_ms
    stt.stream.say("speech_started", audio_ms=0.0)
    cancelled = await sink.until(ResponseCancelled)
    assert cancelled.reason == "barge_in" and cancelled.spoken_text == "First sentence here."  # type: ignore[attr-defined]
    assert [m.content for m in session.history] == ["Tell me three things", "First sentence here."]
    assert llm.aborted == ["s1-1"] and not session.busy
    await session.close()


async def test_no_preemptive_answer_while_an_answer_is_still_playing() -> None:
    llm = StepLLM(["Long answer.", " More.", " Done."], free_running=False)
    session, sink, stt = await started(llm=llm, preemptive=True, barge_in_min_speech_ms=5000.0)
    await session.on_text("Hi")
    await until(lambda: llm.running_requests() == 1)
    await pause(stt, "wait")  # speech too short to interrupt: the answer goes on
    await sink.until(SpeechStarted)
    await asyncio.sleep(0.05)
    assert llm.running_requests() == 1 and len(llm.seen) == 1
    await session.close()


async def test_closing_the_session_aborts_a_held_answer() -> None:
    llm = StepLLM(REPLY, fail="hang")
    session, sink, stt = await started(llm=llm, preemptive=True)
    await pause(stt, "hello")
    await until(lambda: llm.running_requests() == 1)
    await session.close()
    assert llm.running_requests() == 0 and llm.aborted == ["s1-1"]
    assert response_ids(sink) == set()


async def test_a_turn_the_user_went_on_from_within_a_second_counts_as_ended_too_early() -> None:
    llm = StepLLM(REPLY, free_running=False)
    session, sink, stt = await started(llm=llm, end_of_turn="adaptive")
    assert stt.end_of_turn is not None and stt.end_of_turn.adaptive
    ended = sample("monolith_turns_ended_total", rule="complete")
    early = sample("monolith_turns_ended_early_total", rule="complete")
    await session.on_audio(bytes(SECOND))  # 1 s of input: the turn ends at 1000 ms
    stt.stream.say("speech_started", audio_ms=100.0)
    end_turn(stt, "Is it raining?", 700.0)
    await sink.until(ResponseStarted)
    stt.stream.say("speech_started", audio_ms=1600.0)  # 600 ms after the turn ended, its answer coming
    await sink.until(SpeechStarted, 2)
    end_turn(stt, "In Tokyo.", 2000.0)
    await sink.until(ResponseStarted, 2)
    llm.release(len(REPLY))
    await sink.until(ResponseDone)
    stt.stream.say("speech_started", audio_ms=2500.0)  # soon, but after the answer: a reply, not early
    await sink.until(SpeechStarted, 3)
    assert sample("monolith_turns_ended_total", rule="complete") == ended + 2
    assert sample("monolith_turns_ended_early_total", rule="complete") == early + 1
    await session.close()


# --- on the wire: the voice WebSocket with the mock providers --------------------------------

PREEMPTIVE = {"MONOLITH_VOICE__PREEMPTIVE": "true"}
REVISING = {**PREEMPTIVE, "MONOLITH_STT__MOCK__PAUSE_TEXT_DIFFERS_EVERY": "1"}


@pytest.mark.parametrize("live", [PREEMPTIVE], indirect=True)
async def test_on_the_wire_a_preemptive_turn_looks_like_any_turn_and_says_so_in_its_metrics(live: LiveServer) -> None:
    used = sample("monolith_preemptive_responses_total", outcome="used", reason="")
    client = await connect(live)
    await client.send_audio(silence(0.2) + speech(1.0) + silence(0.8), pace_s=0.02)  # real time
    metrics = await client.wait_for("turn.metrics")
    first = {t: client.order.index(t) for t in set(client.order)}
    assert first["speech.started"] < first["speech.stopped"] < first["transcript.final"] < first["response.started"]
    assert first["response.started"] < first["response.text.delta"] < first["response.audio.started"]
    assert first["response.audio.started"] < first["<audio>"] < first["response.done"] < first["turn.metrics"]
    done = client.of_type("response.done")[0]
    assert {e["response_id"] for e in client.events if "response_id" in e} == {done["response_id"]}
    assert done["text"] == client.of_type("transcript.final")[0]["text"]  # the echo LLM, all of it spoken
    assert metrics["preemptive"] is True and metrics["end_of_speech_to_first_audio_ms"] > 0
    assert metrics["end_of_speech_to_first_audio_ms"] == metrics["tts_start_ms"]
    assert sample("monolith_preemptive_responses_total", outcome="used", reason="") == used + 1
    # its audio layout was kept like any answer's: the listener can say how much it heard
    await client.send_json({"type": "response.truncate", "response_id": done["response_id"], "audio_end_ms": 300})
    truncated = await client.wait_for("response.truncated")
    assert truncated["spoken_text"] and done["text"].startswith(truncated["spoken_text"])
    await client.ws.close()


@pytest.mark.parametrize("live", [REVISING], indirect=True)
async def test_on_the_wire_a_final_unlike_the_pause_leaks_nothing_of_the_held_answer(live: LiveServer) -> None:
    thrown = sample("monolith_preemptive_responses_total", outcome="discarded", reason="transcript_changed")
    client = await connect(live)
    await client.send_audio(silence(0.2) + speech(1.0) + silence(0.8), pace_s=0.02)
    metrics = await client.wait_for("turn.metrics")
    done = client.of_type("response.done")[0]
    assert {e["response_id"] for e in client.events if "response_id" in e} == {done["response_id"]}
    assert len(client.of_type("response.started")) == 1 and metrics["preemptive"] is False
    assert done["text"] == client.of_type("transcript.final")[0]["text"]  # answered the final's words
    assert sample("monolith_preemptive_responses_total", outcome="discarded", reason="transcript_changed") == thrown + 1
    session = next(iter(live.app.state.voice.sessions.values()))
    assert [m.content for m in session.history] == [done["text"], done["text"]]
    await client.ws.close()
