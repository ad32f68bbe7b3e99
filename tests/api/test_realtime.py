"""`/v1/realtime` with the real openai SDK (`client.realtime.connect`), and every event checked
against the SDK's own Realtime event types."""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import websockets
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from ..conftest import AppFactory, load_speech, make_settings
from ..fakes import SharedLLM
from ..voice.conftest import LiveServer, serve_live

SERVER_EVENT: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
SLOW = {"MONOLITH_LLM__MOCK__TOKENS_PER_SECOND": "20"}


def tone(seconds: float, rate: int = 24000) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * math.pi * f * t) / (i + 1) for i, f in enumerate((180.0, 360.0, 540.0)))
    return (0.3 * wave / 1.8 * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = 24000) -> bytes:
    return bytes(2 * int(seconds * rate))


def realtime_client(live: LiveServer, key: str = "unused") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, websocket_base_url=live.http_url.replace("http", "ws") + "/v1")


async def events_until(conn: Any, last: str, seen: list[Any], timeout: float = 15) -> Any:
    while True:
        event = await asyncio.wait_for(conn.recv(), timeout)
        seen.append(event)
        if event.type == last:
            return event


async def ask(conn: Any, text: str) -> None:
    """A typed user message, then response.create: one turn taken by the client."""
    await conn.conversation.item.create(item={"type": "message", "role": "user",
                                              "content": [{"type": "input_text", "text": text}]})
    await conn.response.create()


async def play(conn: Any, pcm: bytes, frame: int = 960, pace_s: float = 0.0) -> None:
    """PCM16 at 24 kHz appended in `frame`-byte pieces (960: 20 ms), `pace_s` apart."""
    for i in range(0, len(pcm), frame):
        await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + frame]).decode())
        if pace_s:
            await asyncio.sleep(pace_s)


@pytest.fixture
async def live(app_factory: AppFactory, request: pytest.FixtureRequest) -> AsyncIterator[LiveServer]:
    env = getattr(request, "param", None) or {}
    async with serve_live(app_factory(make_settings(env))) as server:
        yield server


async def test_a_typed_turn_through_the_sdk_links_every_id(live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created" and created.session.type == "realtime"
        assert created.session.audio.input.format.rate == 24000
        await ask(conn, "Hello there.")
        seen: list[Any] = []
        done = await events_until(conn, "response.done", seen)
    kinds = [e.type for e in seen]
    assert kinds[:2] == ["conversation.item.added", "conversation.item.done"]
    assert kinds.index("response.created") < kinds.index("response.output_item.added") < \
        kinds.index("response.content_part.added") < kinds.index("response.output_audio_transcript.delta") < \
        kinds.index("response.output_audio.delta") < kinds.index("response.output_audio.done") < \
        kinds.index("response.output_item.done") < kinds.index("response.done")
    response_id = done.response.id
    item_id = next(e for e in seen if e.type == "response.output_item.added").item.id
    for e in seen:
        if hasattr(e, "response_id"):
            assert e.response_id == response_id, e.type
        if e.type.startswith("response.output_audio") or e.type.startswith("response.content_part"):
            assert e.item_id == item_id, e.type
    assert done.response.status == "completed"
    assert done.response.output[0].content[0].transcript == "Hello there."
    audio = b"".join(base64.b64decode(e.delta) for e in seen if e.type == "response.output_audio.delta")
    assert len(audio) > 24000  # PCM16 at 24 kHz: over half a second


async def test_every_event_matches_the_sdks_event_types(live: LiveServer) -> None:
    async with websockets.connect(live.http_url.replace("http", "ws") + "/v1/realtime?model=gpt-realtime") as ws:
        raw: list[dict[str, Any]] = [json.loads(await ws.recv())]
        await ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "instructions": "Hi."}}))
        pcm = tone(0.8) + silence(0.8)
        for i in range(0, len(pcm), 960):
            await ws.send(json.dumps({"type": "input_audio_buffer.append",
                                      "audio": base64.b64encode(pcm[i : i + 960]).decode()}))
        while not raw or raw[-1]["type"] != "response.done":
            raw.append(json.loads(await asyncio.wait_for(ws.recv(), 15)))
    for event in raw:
        if event["type"].startswith("monolith."):
            assert {"response_id"} <= set(event)  # monolith's own additions
            continue
        SERVER_EVENT.validate_python(event)  # raises naming the field that does not fit
    ids = [e["event_id"] for e in raw]
    assert len(set(ids)) == len(ids)


async def test_an_audio_turn_with_server_vad(live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        pcm = tone(0.8) + silence(0.8)
        await play(conn, pcm)
        seen: list[Any] = []
        await events_until(conn, "response.done", seen)
    kinds = [e.type for e in seen]
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("input_audio_buffer.speech_stopped") < \
        kinds.index("input_audio_buffer.committed") < \
        kinds.index("conversation.item.input_audio_transcription.completed") < kinds.index("response.created")
    started = next(e for e in seen if e.type == "input_audio_buffer.speech_started")
    completed = next(e for e in seen if e.type == "conversation.item.input_audio_transcription.completed")
    assert completed.item_id == started.item_id
    assert completed.transcript == "こんにちは、今日の天気を教えてください。"  # the mock recognizer's words


@pytest.mark.parametrize("live", [SLOW], indirect=True)
async def test_cancel_and_truncate_keep_exactly_what_was_heard(live: LiveServer) -> None:
    text = "This answer runs for a while. It has several sentences. Each one is spoken in turn. And more follow."
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await ask(conn, text)
        seen: list[Any] = []
        await events_until(conn, "response.output_audio.delta", seen)
        await conn.response.cancel()
        done = await events_until(conn, "response.done", seen)
        assert done.response.status == "cancelled"
        assert done.response.status_details.reason == "client_cancelled"
        item_id = done.response.output[0].id
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=300)
        truncated = await events_until(conn, "conversation.item.truncated", seen)
        assert truncated.item_id == item_id and truncated.audio_end_ms == 300
    session = next(iter(live.app.state.voice.sessions.values()), None)
    assert session is None  # closed with the connection


@pytest.mark.parametrize("live", [SLOW], indirect=True)
async def test_speaking_over_an_answer_cancels_it_as_turn_detected(live: LiveServer) -> None:
    """Barge-in with server VAD and the default interrupt_response: the caller's speech stops the
    answer being spoken (response.done, cancelled, turn_detected), and the speech is the next turn."""
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await ask(conn, "A long answer follows. It has several sentences. Each one takes a while.")
        seen: list[Any] = []
        await events_until(conn, "response.output_audio.delta", seen)
        pcm = tone(0.8) + silence(0.8)
        await play(conn, pcm)
        done = await events_until(conn, "response.done", seen)
        assert done.response.status == "cancelled"
        assert done.response.status_details.reason == "turn_detected"
        kinds = [e.type for e in seen]
        assert kinds.index("input_audio_buffer.speech_started") < kinds.index("response.done")
        heard = await events_until(conn, "conversation.item.input_audio_transcription.completed", seen)
        assert heard.transcript == "こんにちは、今日の天気を教えてください。"
        answer = await events_until(conn, "response.done", seen, timeout=30)
        assert answer.response.status == "completed"


@pytest.mark.parametrize("live", [SLOW], indirect=True)
async def test_truncate_cuts_the_history_to_the_audio_heard(live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await ask(conn, "First part here. Second part follows. Third part ends it.")
        seen: list[Any] = []
        done = await events_until(conn, "response.done", seen, timeout=30)
        session = next(iter(live.app.state.voice.sessions.values()))
        full = session.history[-1].content
        assert full == "First part here. Second part follows. Third part ends it."
        await conn.conversation.item.truncate(item_id=done.response.output[0].id, content_index=0, audio_end_ms=1000)
        await events_until(conn, "conversation.item.truncated", seen)
        heard = session.history[-1].content
        assert heard and len(heard) < len(full) and full.startswith(heard)


async def test_a_partial_session_update_keeps_what_it_does_not_name(live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        seen: list[Any] = []
        await conn.session.update(session={"type": "realtime", "instructions": "Be brief.",
                                           "audio": {"input": {"turn_detection": None}}})
        first = await events_until(conn, "session.updated", seen)
        assert first.session.audio.input.turn_detection is None and first.session.instructions == "Be brief."
        await conn.session.update(session={"type": "realtime", "audio": {"output": {"speed": 1.5}}})
        second = await events_until(conn, "session.updated", seen)
        assert second.session.audio.output.speed == 1.5
        assert second.session.audio.input.turn_detection is None  # the earlier update still holds
        assert second.session.instructions == "Be brief."


async def test_turns_taken_by_the_client_commit_then_create(live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        seen: list[Any] = []
        updated = await events_until(conn, "session.updated", seen)
        assert updated.session.audio.input.turn_detection is None
        pcm = tone(0.8) + silence(0.2)
        await play(conn, pcm, 4800)
        await asyncio.sleep(0.3)
        await conn.input_audio_buffer.commit()
        completed = await events_until(conn, "conversation.item.input_audio_transcription.completed", seen)
        assert completed.transcript
        assert not any(e.type.startswith("input_audio_buffer.speech") for e in seen)  # no server VAD
        assert not any(e.type == "response.created" for e in seen)  # nothing until asked
        await conn.response.create()
        done = await events_until(conn, "response.done", seen)
        assert done.response.status == "completed"


async def test_create_response_false_waits_and_interrupt_response_false_lets_it_finish(live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": {
            "type": "server_vad", "create_response": False, "interrupt_response": False}}}})
        seen: list[Any] = []
        await events_until(conn, "session.updated", seen)
        pcm = tone(0.8) + silence(0.8)
        await play(conn, pcm)
        await events_until(conn, "conversation.item.input_audio_transcription.completed", seen)
        await asyncio.sleep(0.3)
        assert not any(e.type == "response.created" for e in seen)
        await conn.response.create()
        await events_until(conn, "response.output_audio.delta", seen)
        await play(conn, pcm)  # speech during the answer: not an interruption now
        done = await events_until(conn, "response.done", seen)
        assert done.response.status == "completed"


async def test_bad_events_get_errors_naming_them_and_the_session_goes_on(live: LiveServer) -> None:
    async with websockets.connect(live.http_url.replace("http", "ws") + "/v1/realtime") as ws:
        await ws.recv()

        async def answer(event: dict[str, Any]) -> dict[str, Any]:
            await ws.send(json.dumps(event))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if reply["type"] in ("error", "session.updated"):
                    return dict(reply)

        unknown = await answer({"type": "conversation.item.retrieve", "event_id": "client-1", "item_id": "x"})
        assert unknown["error"]["code"] == "unknown_event" and unknown["error"]["event_id"] == "client-1"
        assert "conversation.item.retrieve" in unknown["error"]["message"]
        semantic = await answer({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "semantic_vad"}}}}})
        assert semantic["error"]["param"] == "session.audio.input.turn_detection.type"
        silence_ms = await answer({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}}}})
        assert "500 ms of silence" in silence_ms["error"]["message"]
        rate = await answer({"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
            "format": {"type": "audio/pcm", "rate": 16000}}}}})
        assert rate["error"]["code"] == "unsupported_value"
        bad_audio = await answer({"type": "input_audio_buffer.append", "audio": "not base64!!"})
        assert bad_audio["error"]["param"] == "audio"
        fine = await answer({"type": "session.update", "session": {"type": "realtime", "instructions": "Be kind."}})
        assert fine["type"] == "session.updated" and fine["session"]["instructions"] == "Be kind."


async def test_browsers_get_the_realtime_subprotocol_and_may_send_their_key_in_another(app_factory: AppFactory) -> None:
    settings = make_settings({"MONOLITH_SERVER__API_KEYS": '["k-1"]'})
    async with serve_live(app_factory(settings)) as live:
        url = live.http_url.replace("http", "ws") + "/v1/realtime"
        async with websockets.connect(url, subprotocols=["realtime", "openai-insecure-api-key.k-1"]) as ws:  # type: ignore[list-item]
            assert ws.subprotocol == "realtime"
            assert json.loads(await ws.recv())["type"] == "session.created"
        async with realtime_client(live, key="k-1").realtime.connect(model="gpt-realtime") as conn:
            assert (await conn.recv()).type == "session.created"
        with pytest.raises(websockets.InvalidStatus):
            async with realtime_client(live, key="wrong").realtime.connect(model="gpt-realtime") as conn:
                await conn.recv()


@pytest.mark.engine
@pytest.mark.asyncio(loop_scope="session")  # the shared vLLM engine lives in the session's loop
async def test_the_sdk_against_real_engines(app_factory: AppFactory, speech_root: Path, llama_engine: Any) -> None:
    """Moonshine hears, the tiny Llama (vLLM) answers, Piper speaks: a typed and a spoken turn."""
    app = app_factory(load_speech(speech_root, {"MONOLITH_LLM__PROVIDER": '"vllm"', "MONOLITH_LLM__MAX_TOKENS": "8"}),
                      builders={"llm": lambda s, n: SharedLLM(llama_engine)})
    async with serve_live(app) as live:
        async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
            await conn.recv()
            await ask(conn, "Hi.")
            seen: list[Any] = []
            done = await events_until(conn, "response.done", seen, timeout=60)
            assert done.response.status == "completed"
            assert any(e.type == "response.output_audio.delta" for e in seen)
            async with __import__("httpx").AsyncClient(base_url=live.http_url, timeout=60) as http:
                spoken = (await http.post("/v1/audio/speech", json={
                    "model": "default", "input": "Please call Stella.", "response_format": "pcm"})).content
            pcm = spoken + silence(1.0)
            await play(conn, pcm, 4800, pace_s=0.1)
            completed = await events_until(conn, "conversation.item.input_audio_transcription.completed", seen, 30)
            assert completed.transcript.lower().strip(".") == "please call stella"
