"""The end-of-turn policy: which silence ends a turn after what was said, and the mock STT
applying it (where speech.stopped comes in the audio, and the pauses inside a turn)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from monolith.config import MockSTTConfig, STTConfig
from monolith.providers.mock_stt import MockSTT
from monolith.providers.stt import STTEvent
from monolith.turn_end import EndOfTurn

ADAPTIVE = EndOfTurn(pause_ms=200.0, adaptive=True, complete_ms=300.0, incomplete_ms=1000.0)
RATE = 16000


@pytest.mark.parametrize(("text", "rule"), [
    ("今日の天気を教えてください。", "complete"),
    ("What time is it?", "complete"),
    ("「本当？」", "complete"),  # the ender inside its closing bracket
    ("明日は晴れますか", "complete"),  # a question without its mark
    ("雨が降ってるけど", "incomplete"),
    ("I want to go to Tokyo and", "incomplete"),
    ("so, um", "incomplete"),
    ("Tell me about,", "incomplete"),
    ("Tokyo weather", "fixed"),
    ("", "fixed"),
])
def test_the_adaptive_rule_reads_the_end_of_what_was_said(text: str, rule: str) -> None:
    assert ADAPTIVE.rule(text) == rule
    assert EndOfTurn(pause_ms=200.0).rule(text) == "fixed"  # the fixed rule reads nothing


def test_the_silence_is_shorter_after_a_complete_sentence_and_longer_after_a_trailing_word() -> None:
    assert ADAPTIVE.silence_ms("Is it raining?", 500.0) == 300.0
    assert ADAPTIVE.silence_ms("It is raining but", 500.0) == 1000.0
    assert ADAPTIVE.silence_ms("It is raining", 500.0) == 500.0
    assert ADAPTIVE.silence_ms(None, 500.0) == 500.0
    custom = EndOfTurn(adaptive=True, incomplete_endings=("ていうか",), complete_endings=("right",))
    assert custom.rule("ていうか") == "incomplete" and custom.rule("that's right") == "complete"
    assert custom.rule("and") == "fixed"  # the lists replace the defaults


def voiced(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 180 * t)).astype(np.float32)


def quiet(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * RATE), dtype=np.float32)


async def events_for(audio: list[np.ndarray], end_of_turn: EndOfTurn | None, transcript: str,
                     every: int = 0) -> list[STTEvent]:
    """What the mock STT says about `audio`, fed 20 ms at a time; each event's audio_ms is where
    it refers to, and `speech_stopped` is put at the frame that ended the turn."""
    mock = MockSTTConfig(decode_delay_ms=0.0, transcript=transcript, pause_text_differs_every=every)
    stt = MockSTT(STTConfig(provider="mock", vad_silence_ms=500.0, mock=mock))
    stream = await stt.open_stream(sample_rate=RATE, request_id="t", end_of_turn=end_of_turn)
    samples = np.concatenate(audio)
    frame = RATE // 50
    heard: list[STTEvent] = []
    for i in range(0, samples.size, frame):
        await stream.feed(samples[i : i + frame])
        await asyncio.sleep(0)  # the decode delay's timers fire
        while not stream.queue.empty():  # type: ignore[attr-defined]
            ev = stream.queue.get_nowait()  # type: ignore[attr-defined]
            heard.append(STTEvent(ev.kind, ev.text, (i + frame) * 1000 / RATE) if ev.kind == "speech_stopped" else ev)
    await asyncio.sleep(0.01)
    while not stream.queue.empty():  # type: ignore[attr-defined]
        heard.append(stream.queue.get_nowait())  # type: ignore[attr-defined]
    await stream.close()
    return [e for e in heard if e.kind != "partial"]


@pytest.mark.parametrize(("transcript", "policy", "silence_ms"), [
    ("今日の天気を教えてください。", None, 500),
    ("今日の天気を教えてください。", ADAPTIVE, 300),
    ("今日は雨だけど", ADAPTIVE, 1000),
    ("今日は雨", ADAPTIVE, 500),
])
async def test_the_mock_stt_ends_the_turn_after_the_silence_the_text_calls_for(
    transcript: str, policy: EndOfTurn | None, silence_ms: int
) -> None:
    events = await events_for([quiet(0.2), voiced(1.0), quiet(1.5)], policy, transcript)
    stopped = next(e for e in events if e.kind == "speech_stopped")
    assert stopped.audio_ms == pytest.approx(1200 + silence_ms, abs=1)  # speech ended at 1.2 s
    assert [e.kind for e in events][-1] == "final" and events[-1].text == transcript


async def test_the_mock_stt_reports_a_pause_with_the_text_and_a_resumption_inside_one_turn() -> None:
    events = await events_for([quiet(0.2), voiced(1.0), quiet(0.3), voiced(0.5), quiet(1.0)],
                              EndOfTurn(pause_ms=200.0), "もしもし")
    assert [e.kind for e in events] == ["speech_started", "paused", "resumed", "paused", "speech_stopped", "final"]
    assert events[1].text == events[3].text == "もしもし" and events[1].audio_ms == pytest.approx(1200, abs=1)
    assert events[2].audio_ms == pytest.approx(1500, abs=1)
    without = await events_for([quiet(0.2), voiced(1.0), quiet(0.3), voiced(0.5), quiet(1.0)], None, "もしもし")
    assert [e.kind for e in without] == ["speech_started", "speech_stopped", "final"]


async def test_the_mock_stt_can_revise_the_text_it_had_at_a_pause() -> None:
    events = await events_for([quiet(0.2), voiced(1.0), quiet(1.0)] * 2, EndOfTurn(pause_ms=200.0),
                              "今日の天気を教えてください。", every=2)
    pauses = [e.text for e in events if e.kind == "paused"]
    finals = [e.text for e in events if e.kind == "final"]
    assert pauses[0] == finals[0] and pauses[1] != finals[1] and finals[1].startswith(pauses[1])
