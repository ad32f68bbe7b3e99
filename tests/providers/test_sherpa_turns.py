"""Turns with pauses in the sherpa-onnx provider, through the real library (Silero VAD, the tiny
random models): a stream opened with an EndOfTurn that has pause_ms reports a pause with the
text so far, a resumption, and ends the turn only after the turn's silence; without one it is
the stream it always was. The sentence is tests/data/speech_en_16k.wav (espeak-ng)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monolith.providers.stt import STTEvent
from monolith.turn_end import EndOfTurn

from .stt_fixtures import RATE, silence, speech
from .test_sherpa_stt import collect, loaded, play

MODES = ["streaming", "offline"]
PAUSES = EndOfTurn(pause_ms=200.0)


def kinds(events: list[STTEvent]) -> list[str]:
    return [e.kind for e in events if e.kind != "partial"]


async def heard(folder: Path, audio: np.ndarray, end_of_turn: EndOfTurn | None, **config: object) -> list[STTEvent]:
    provider = await loaded(folder, vad_silence_ms=500.0, **config)
    stream = await provider.open_stream(sample_rate=RATE, request_id="turns", end_of_turn=end_of_turn)
    await play(stream, audio, pace=0.001)
    events = await collect(stream, settle_s=0.8)
    await stream.close()
    await provider.close()
    return events


@pytest.mark.parametrize("mode", MODES)
async def test_a_short_pause_mid_turn_is_reported_with_the_text_so_far_and_the_turn_goes_on(
    sherpa_models: dict[str, Path], mode: str
) -> None:
    # the sentence, 350 ms of silence (past the pause, short of the turn's 500 ms), the sentence again
    audio = np.concatenate([silence(0.5), speech(), silence(0.35), speech(), silence(1.5)])
    events = await heard(sherpa_models[mode], audio, PAUSES)
    assert kinds(events) == ["speech_started", "paused", "resumed", "paused", "speech_stopped", "final"]
    first_pause, resumed, last_pause, stopped, final = [e for e in events if e.kind != "partial"][1:]
    assert first_pause.text and last_pause.text  # what was said so far, decoded at the pause
    assert 2500 <= first_pause.audio_ms <= 3300  # the end of the first sentence
    assert resumed.audio_ms - first_pause.audio_ms < 600  # ...and speech comes back after the gap
    assert stopped.audio_ms == final.audio_ms == last_pause.audio_ms  # the turn ends where speech ended
    if mode == "offline":  # nothing was said after the last pause: its text is the final's
        assert final.text == last_pause.text and len(final.text) > len(first_pause.text)


@pytest.mark.parametrize("mode", MODES)
async def test_without_an_end_of_turn_policy_the_same_audio_gives_no_pauses(
    sherpa_models: dict[str, Path], mode: str
) -> None:
    audio = np.concatenate([silence(0.5), speech(), silence(0.35), speech(), silence(1.5)])
    events = await heard(sherpa_models[mode], audio, None)
    assert "paused" not in kinds(events) and "resumed" not in kinds(events)
    assert kinds(events).count("final") == 1


@pytest.mark.parametrize("mode", MODES)
async def test_silence_past_the_turns_own_ends_it_after_a_pause(sherpa_models: dict[str, Path], mode: str) -> None:
    audio = np.concatenate([silence(0.5), speech(), silence(0.9), speech(), silence(1.5)])
    events = await heard(sherpa_models[mode], audio, PAUSES)
    assert kinds(events) == ["speech_started", "paused", "speech_stopped", "final"] * 2


async def test_a_longer_silence_asked_for_after_the_text_keeps_the_turn_open(sherpa_models: dict[str, Path]) -> None:
    # the adaptive rule asks 1 s after an "incomplete" text; the tiny model's random kana never end
    # a sentence, so here every text counts as incomplete (an ending that matches any text's end)
    waits = EndOfTurn(pause_ms=200.0, adaptive=True, incomplete_ms=1000.0,
                      incomplete_endings=tuple(chr(c) for c in range(0x3041, 0x30FF)))
    before = np.concatenate([silence(0.5), speech(), silence(0.4)])  # up to the pause: its text is decoded
    after = np.concatenate([silence(0.3), speech(), silence(2.0)])  # 700 ms of silence in all, then more
    provider = await loaded(sherpa_models["offline"], vad_silence_ms=500.0)
    stream = await provider.open_stream(sample_rate=RATE, request_id="adaptive", end_of_turn=waits)
    await play(stream, before, pace=0.001)
    events = await collect(stream)
    assert kinds(events) == ["speech_started", "paused"]
    await play(stream, after, pace=0.001)
    events += await collect(stream, settle_s=0.8)
    assert kinds(events) == ["speech_started", "paused", "resumed", "paused", "speech_stopped", "final"]
    await provider.close()
    fixed = await heard(sherpa_models["offline"], np.concatenate([before, after]), PAUSES)  # 500 ms: two turns
    assert kinds(fixed).count("final") == 2
