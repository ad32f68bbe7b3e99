"""The voice WebSocket end to end on mock providers: turns, barge-in, isolation, bad input."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets

from .conftest import LiveServer, connect, silence, speech

TRANSCRIPT = "こんにちは、今日の天気を教えてください。"
SLOW_LLM = {"MONOLITH_LLM__MOCK__TOKENS_PER_SECOND": "20"}
LONG_TEXT = "This is a long answer. " * 12


async def test_session_created_describes_the_audio_formats(live: LiveServer) -> None:
    client = await connect(live)
    created = client.events[0]
    assert created["protocol"] == "monolith.voice.v1"
    assert created["input_audio_format"] == {"encoding": "pcm16le", "sample_rate": 16000, "channels": 1}
    assert created["output_audio_format"]["sample_rate"] == 24000
    await client.ws.close()


async def test_full_spoken_turn_in_order(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_audio(silence(0.2) + speech(1.0) + silence(0.8), pace_s=0.02)  # real time
    metrics = await client.wait_for("turn.metrics")
    first = {t: client.order.index(t) for t in set(client.order)}
    assert first["speech.started"] < first["transcript.partial"] < first["speech.stopped"]
    assert first["speech.stopped"] < first["transcript.final"] < first["response.started"]
    assert first["response.started"] < first["response.text.delta"] < first["response.audio.started"]
    assert first["response.audio.started"] < first["<audio>"] < first["response.done"] < first["turn.metrics"]
    assert client.of_type("transcript.final")[0]["text"] == TRANSCRIPT
    done = client.of_type("response.done")[0]
    assert done["text"] == TRANSCRIPT, "the mock LLM echoes the user, and all of it was spoken"
    assert "".join(d["delta"] for d in client.of_type("response.text.delta")) == TRANSCRIPT
    audio = b"".join(client.audio)
    assert len(audio) % 2 == 0 and len(audio) > 24000  # PCM16 at 24 kHz, over half a second
    for key in ("partial_ms", "final_ms", "llm_first_token_ms", "tts_start_ms", "pipeline_overhead_ms"):
        assert isinstance(metrics[key], float) and metrics[key] >= 0, key
    assert metrics["tts_start_ms"] >= metrics["llm_first_token_ms"] >= metrics["final_ms"]
    await client.ws.close()


async def test_typed_turn_skips_stt(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "input_text", "text": "Hello there. How are you?"})
    done = await client.wait_for("response.done")
    assert done["text"] == "Hello there. How are you?"
    assert not client.of_type("transcript.final") and client.audio
    metrics = await client.wait_for("turn.metrics")
    assert metrics["partial_ms"] is None and metrics["tts_start_ms"] > 0
    await client.ws.close()


@pytest.mark.parametrize("live", [SLOW_LLM], indirect=True)
async def test_barge_in_aborts_the_llm_and_keeps_only_what_was_heard(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "input_text", "text": LONG_TEXT})
    started = await client.wait_for("response.audio.started")
    await client.send_audio(speech(0.5), pace_s=0.0)
    cancelled = await client.wait_for("response.cancelled")
    assert cancelled["reason"] == "barge_in"
    assert cancelled["response_id"] == started["response_id"]
    llm = live.registry.slots["llm"].primary
    assert cancelled["response_id"] in llm.cancelled, "the engine request was aborted"
    assert llm.running_requests() == 0
    spoken = cancelled["spoken_text"]
    assert spoken and len(spoken) < len(LONG_TEXT.strip())
    assert LONG_TEXT.startswith(spoken[:20])
    session = next(iter(live.app.state.voice.sessions.values()))
    assert [m.role for m in session.history] == ["user", "assistant"]
    assert session.history[1].content == spoken
    await client.ws.close()


@pytest.mark.parametrize("live", [SLOW_LLM], indirect=True)
async def test_a_cough_does_not_cancel(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "input_text", "text": "Short answer here. And another sentence."})
    await client.wait_for("response.audio.started")
    await client.send_audio(speech(0.1) + silence(0.1))
    done = await client.wait_for("response.done")
    assert done["text"] == "Short answer here. And another sentence."
    assert not client.of_type("response.cancelled")
    await client.ws.close()


@pytest.mark.parametrize("live", [SLOW_LLM], indirect=True)
async def test_response_cancel_on_demand(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "input_text", "text": LONG_TEXT})
    await client.wait_for("response.text.delta")
    await client.send_json({"type": "response.cancel"})
    cancelled = await client.wait_for("response.cancelled")
    assert cancelled["reason"] == "client_cancel"
    assert cancelled["response_id"] in live.registry.slots["llm"].primary.cancelled
    await client.ws.close()


@pytest.mark.parametrize("live", [SLOW_LLM], indirect=True)
async def test_typed_input_during_a_response_interrupts_it(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "input_text", "text": LONG_TEXT})
    await client.wait_for("response.text.delta")
    await client.send_json({"type": "input_text", "text": "Stop. New question."})
    cancelled = await client.wait_for("response.cancelled")
    assert cancelled["reason"] == "interrupted"
    done = await client.wait_for("response.done")
    assert done["text"] == "Stop. New question."
    await client.ws.close()


@pytest.mark.parametrize("live", [SLOW_LLM], indirect=True)
async def test_disconnect_mid_response_leaves_nothing_running(live: LiveServer) -> None:
    baseline = len(asyncio.all_tasks())
    client = await connect(live)
    await client.send_audio(speech(0.4))  # an utterance in progress, too
    await client.send_json({"type": "input_text", "text": LONG_TEXT})
    await client.wait_for("response.audio.started")
    await client.ws.close()
    registry = live.registry
    for _ in range(200):
        if not live.app.state.voice.sessions and len(asyncio.all_tasks()) <= baseline:
            break
        await asyncio.sleep(0.02)
    assert not live.app.state.voice.sessions
    assert len(asyncio.all_tasks()) <= baseline, [t.get_name() for t in asyncio.all_tasks()]
    assert registry.llm.running_requests() == 0
    assert registry.tts.running_requests() == 0
    assert registry.stt.live_streams() == 0
    assert registry.slots["llm"].primary.cancelled, "the LLM request was aborted, not left to finish"


async def test_eight_concurrent_sessions_get_only_their_own_events(live: LiveServer) -> None:
    clients = [await connect(live) for _ in range(8)]

    async def turn(i: int) -> None:
        await clients[i].send_json({"type": "input_text", "text": f"Session number {i} speaking."})
        await clients[i].wait_for("turn.metrics")

    await asyncio.gather(*(turn(i) for i in range(8)))
    for i, client in enumerate(clients):
        done = client.of_type("response.done")
        assert [d["text"] for d in done] == [f"Session number {i} speaking."]
        ids = {e["response_id"] for e in client.events if "response_id" in e}
        session_id = client.events[0]["session_id"]
        assert ids and all(rid.startswith(session_id) for rid in ids)
        assert client.audio
        await client.ws.close()


async def test_bad_input_gets_error_events_and_the_session_stays_usable(live: LiveServer) -> None:
    client = await connect(live)
    other = await connect(live)
    cases = [
        (b"\x00\x01\x02", "invalid_audio"),
        (bytes(64002), "frame_too_large"),
        ("{not json", "invalid_json"),
        ('{"type": "dance"}', "unknown_event"),
        ('["input_text"]', "invalid_message"),
        ('{"type": "input_text"}', "invalid_message"),
        ('{"type": "session.update", "session": {"input_sample_rate": 1000000}}', "invalid_rate"),
        ('{"type": "session.update", "session": {"voice": "nobody"}}', "unknown_voice"),
        ('{"type": "session.update", "session": {"colour": "red"}}', "unknown_field"),
        ('{"type": "input_text", "text": "' + "x" * 2001 + '"}', "text_too_long"),
        ('{"type": "input_text", "text": "   "}', "empty_text"),
    ]
    for payload, code in cases:
        await client.ws.send(payload)
        ev = await client.wait_for("error")
        assert ev["error"]["code"] == code, (payload[:40], ev)
        assert ev["error"]["message"]
    await client.send_json({"type": "input_text", "text": "Still here?"})
    assert (await client.wait_for("response.done"))["text"] == "Still here?"
    await other.send_json({"type": "input_text", "text": "Unaffected."})
    assert (await other.wait_for("response.done"))["text"] == "Unaffected."
    await client.ws.close()
    await other.ws.close()


async def test_session_update_changes_rate_and_prompt(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "session.update", "session": {"input_sample_rate": 8000, "system_prompt": "Be terse."}})
    updated = await client.wait_for("session.updated")
    assert updated["options"]["input_sample_rate"] == 8000
    await client.send_audio(speech(1.0, rate=8000) + silence(0.8, rate=8000), frame_bytes=320)
    final = await client.wait_for("transcript.final")
    assert final["text"] == TRANSCRIPT
    await client.ws.close()


async def test_session_close_closes_normally(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "session.close"})
    with pytest.raises(websockets.ConnectionClosed):
        await client.next_event()
    assert client.ws.close_code == 1000


@pytest.mark.parametrize("live", [{"MONOLITH_VOICE__MAX_SESSIONS": "1"}], indirect=True)
async def test_too_many_sessions_are_refused_with_1013(live: LiveServer) -> None:
    from prometheus_client import REGISTRY

    def refused() -> float:
        return REGISTRY.get_sample_value("monolith_voice_sessions_rejected_total", {"reason": "full"}) or 0.0

    before = refused()
    first = await connect(live)
    ws = await websockets.connect(live.url)
    message = await ws.recv()
    assert '"too_many_sessions"' in str(message)
    with pytest.raises(websockets.ConnectionClosed):
        await ws.recv()
    assert ws.close_code == 1013 and ws.close_reason == "too many sessions"
    # what an autoscaler reads: the capacity, the sessions in use, and the refusals
    assert REGISTRY.get_sample_value("monolith_voice_sessions_capacity") == 1
    assert REGISTRY.get_sample_value("monolith_voice_sessions_active") == 1
    assert refused() == before + 1
    await first.ws.close()


@pytest.mark.parametrize("live", [{"MONOLITH_SERVER__MAX_CONNECTIONS": "2"}], indirect=True)
async def test_connections_past_the_cap_get_503_until_one_closes(live: LiveServer) -> None:
    first, second = await connect(live), await connect(live)
    health = live.url.replace("ws://", "http://").replace("/v1/voice", "/health")
    async with httpx.AsyncClient() as http:
        refused = await http.get(health)
        assert refused.status_code == 503 and refused.text == "Service Unavailable"  # uvicorn's own answer
        await first.ws.close()
        await second.ws.close()
        for _ in range(100):
            if (await http.get(health)).status_code == 200:
                break
            await asyncio.sleep(0.02)
        assert (await http.get(health)).status_code == 200


@pytest.mark.parametrize("live", [{"MONOLITH_VOICE__IDLE_TIMEOUT_S": "0.3"}], indirect=True)
async def test_idle_sessions_time_out(live: LiveServer) -> None:
    client = await connect(live)
    ev = await client.wait_for("error", timeout=5)
    assert ev["error"]["code"] == "idle_timeout"
    with pytest.raises(websockets.ConnectionClosed):
        await client.next_event()
    assert client.ws.close_code == 1000


async def test_voice_metrics_are_recorded(live: LiveServer) -> None:
    from prometheus_client import REGISTRY

    def recorded() -> float:
        return REGISTRY.get_sample_value("monolith_turn_latency_seconds_count", {"stage": "tts_start"}) or 0.0

    before = recorded()
    client = await connect(live)
    await client.send_json({"type": "input_text", "text": "Measure me."})
    await client.wait_for("turn.metrics")
    await client.ws.close()
    assert recorded() == before + 1  # this turn, once (the registry is the process's)


@pytest.mark.parametrize("live", [SLOW_LLM], indirect=True)
async def test_response_truncate_keeps_exactly_the_audio_heard(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "input_text", "text": "First part here. Second part follows. Third part ends it."})
    done = await client.wait_for("response.done", timeout=30)
    await client.send_json({"type": "response.truncate", "response_id": done["response_id"], "audio_end_ms": 1000})
    truncated = await client.wait_for("response.truncated")
    heard = truncated["spoken_text"]
    assert heard and len(heard) < len(done["text"]) and done["text"].startswith(heard)
    session = next(iter(live.app.state.voice.sessions.values()))
    assert session.history[-1].content == heard
    await client.ws.close()
