"""Function calling on `/v1/realtime` with the openai SDK on the mock providers: the model's call
as Realtime events, the client's `function_call_output`, `response.create`, the spoken answer.
Every server event is validated against the SDK's own event types.

The mock LLM calls a tool when `tool_choice` is "required" (the first tool) or when the user's
words name it ("auto"), and answers a tool's result with the result's text."""

from __future__ import annotations

import asyncio
import base64
import json
from typing import Any

import pytest
import websockets

from monolith.providers.llm import ChatMessage

from ..conftest import build_app, real_llm_settings
from ..fakes import SharedLLM
from ..voice.conftest import LiveServer, serve_live
from .test_realtime import SERVER_EVENT, SLOW, live, realtime_client, silence, tone

__all__ = ["live"]  # the fixture
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city", "parameters": SCHEMA}
ASK = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Call get_weather for Tokyo."}]}
RESULT = "It is sunny in Tokyo, 21 degrees."


async def until(conn: Any, last: str, seen: list[Any], timeout: float = 15) -> Any:
    """Events up to `last`, each validated against the SDK's types (monolith's own skipped)."""
    while True:
        raw = json.loads(await asyncio.wait_for(conn.recv_bytes(), timeout))
        if raw["type"].startswith("monolith."):
            continue
        event = SERVER_EVENT.validate_python(raw)  # raises naming the field that does not fit
        seen.append(event)
        if event.type == "error":
            raise AssertionError(f"error event: {raw}")
        if event.type == last:
            return event


def of_response(seen: list[Any], response_id: str) -> list[Any]:
    start = next(i for i, e in enumerate(seen) if e.type == "response.created" and e.response.id == response_id)
    end = next(i for i, e in enumerate(seen) if e.type == "response.done" and e.response.id == response_id)
    return seen[start : end + 1]


async def call_made(conn: Any, seen: list[Any]) -> Any:
    """The response that called: its one output, a completed function_call item."""
    done = await until(conn, "response.done", seen)
    assert done.response.status == "completed"
    (call,) = done.response.output
    assert call.type == "function_call" and call.status == "completed" and call.name == "get_weather"
    return call


async def test_the_function_call_round_trip_with_the_sdk(live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        seen: list[Any] = []
        await until(conn, "session.created", seen)
        await conn.session.update(session={"type": "realtime", "tools": [WEATHER], "tool_choice": "auto"})
        updated = await until(conn, "session.updated", seen)
        assert [t.name for t in updated.session.tools] == ["get_weather"] and updated.session.tool_choice == "auto"
        assert updated.session.tools[0].parameters == SCHEMA
        await conn.conversation.item.create(item=ASK)
        await conn.response.create()
        call = await call_made(conn, seen)
        assert json.loads(call.arguments) == {"city": "string"}  # the mock's value for the schema
        events = of_response(seen, seen[-1].response.id)
        kinds = [e.type for e in events]
        deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
        assert kinds[:3] == ["response.created", "response.output_item.added", "conversation.item.added"]
        assert kinds[3 : 3 + len(deltas)] == ["response.function_call_arguments.delta"] * len(deltas)
        assert kinds[3 + len(deltas) :] == ["response.function_call_arguments.done", "response.output_item.done",
                                            "conversation.item.done", "response.done"]  # no audio, no message
        added, args_done = events[1].item, events[3 + len(deltas)]
        assert added.type == "function_call" and added.status == "in_progress" and added.call_id == call.call_id
        assert "".join(d.delta for d in deltas) == args_done.arguments == call.arguments
        for e in [*deltas, args_done]:
            assert (e.item_id, e.call_id, e.output_index) == (call.id, call.call_id, 0)
        assert args_done.name == "get_weather"

        await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id,
                                                  "output": RESULT})
        output = await until(conn, "conversation.item.done", seen)
        assert output.item.type == "function_call_output" and output.item.call_id == call.call_id
        assert output.previous_item_id == call.id
        assert not any(e.type == "response.created" for e in seen[-2:])  # the answer waits for response.create
        await conn.response.create()
        done = await until(conn, "response.done", seen)
        assert done.response.status == "completed"
        assert done.response.output[0].content[0].transcript == RESULT  # the answer, spoken
        audio = b"".join(base64.b64decode(e.delta) for e in of_response(seen, done.response.id)
                         if e.type == "response.output_audio.delta")
        assert len(audio) > 24000
    mock = live.registry.slots["llm"].primary
    assert mock.last_messages[-2:] == [
        ChatMessage("assistant", None, tool_calls=mock.last_messages[-2].tool_calls),
        ChatMessage("tool", RESULT, tool_call_id=call.call_id)]
    assert mock.last_messages[-2].tool_calls[0].id == call.call_id
    assert [t.name for t in mock.last_options.tools] == ["get_weather"]


async def test_tool_choice_required_on_a_spoken_turn_then_response_create_with_its_own_tool_choice(
        live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        seen: list[Any] = []
        await until(conn, "session.created", seen)
        await conn.session.update(session={"type": "realtime", "tools": [WEATHER], "tool_choice": "required"})
        await until(conn, "session.updated", seen)
        pcm = tone(0.8) + silence(0.8)
        for i in range(0, len(pcm), 960):
            await conn.input_audio_buffer.append(audio=base64.b64encode(pcm[i : i + 960]).decode())
        call = await call_made(conn, seen)  # the user's words name no tool: "required" forced the call
        session = next(iter(live.app.state.voice.sessions.values()))
        assert [m.role for m in session.history] == ["user", "assistant"]
        assert session.history[1].tool_calls[0].id == call.call_id
        await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id,
                                                  "output": RESULT})
        await until(conn, "conversation.item.done", seen)
        await conn.response.create(response={"tool_choice": "auto"})  # this answer need not call again
        done = await until(conn, "response.done", seen)
        assert done.response.output[0].type == "message"
        assert done.response.output[0].content[0].transcript == RESULT
        assert [m.role for m in session.history] == ["user", "assistant", "tool", "assistant"]
        assert session.options.tool_choice == "required"  # the session's own is unchanged


@pytest.mark.parametrize("live", [SLOW], indirect=True)
async def test_a_response_cancelled_mid_call_closes_the_call_incomplete_and_keeps_it_out_of_the_history(
        live: LiveServer) -> None:
    async with realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        seen: list[Any] = []
        await until(conn, "session.created", seen)
        await conn.session.update(session={"type": "realtime", "tools": [WEATHER]})
        await until(conn, "session.updated", seen)
        await conn.conversation.item.create(item=ASK)
        await conn.response.create()
        await until(conn, "response.function_call_arguments.delta", seen)
        await conn.response.cancel()
        done = await until(conn, "response.done", seen)
        assert done.response.status == "cancelled"
        (item,) = done.response.output
        assert item.type == "function_call" and item.status == "incomplete"
        assert not any(e.type == "response.function_call_arguments.done" for e in seen)
        session = next(iter(live.app.state.voice.sessions.values()))
        assert [m.role for m in session.history] == ["user"]  # a call cut off was never made


async def test_a_call_waiting_for_its_result_stalls_no_other_session(live: LiveServer) -> None:
    client = realtime_client(live)
    async with client.realtime.connect(model="gpt-realtime") as waiting, \
            client.realtime.connect(model="gpt-realtime") as other:
        seen: list[Any] = []
        others: list[Any] = []
        await until(waiting, "session.created", seen)
        await until(other, "session.created", others)
        await waiting.session.update(session={"type": "realtime", "tools": [WEATHER]})
        await until(waiting, "session.updated", seen)
        await waiting.conversation.item.create(item=ASK)
        await waiting.response.create()
        call = await call_made(waiting, seen)
        for _ in range(10):  # the waiting session goes on hearing its microphone
            await waiting.input_audio_buffer.append(audio=base64.b64encode(silence(0.02)).decode())
        await other.conversation.item.create(item={"type": "message", "role": "user",
                                                   "content": [{"type": "input_text", "text": "Hello there."}]})
        await other.response.create()
        done = await until(other, "response.done", others)  # a whole turn while the tool "runs"
        assert done.response.status == "completed"
        assert done.response.output[0].content[0].transcript == "Hello there."
        await waiting.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id,
                                                     "output": RESULT})
        await waiting.response.create()
        answer = await until(waiting, "response.done", seen)
        assert answer.response.output[0].content[0].transcript == RESULT


async def test_bad_tools_and_outputs_get_errors_naming_the_field(live: LiveServer) -> None:
    async with websockets.connect(live.http_url.replace("http", "ws") + "/v1/realtime") as ws:
        await ws.recv()

        async def answer(event: dict[str, Any]) -> dict[str, Any]:
            await ws.send(json.dumps(event))
            while True:
                reply = json.loads(await asyncio.wait_for(ws.recv(), 5))
                SERVER_EVENT.validate_python(reply)
                if reply["type"] in ("error", "session.updated", "conversation.item.done"):
                    return dict(reply)

        def update(**session: Any) -> dict[str, Any]:
            return {"type": "session.update", "session": {"type": "realtime", **session}}

        cases: list[tuple[dict[str, Any], str, str | None]] = [
            (update(tools=[{**WEATHER, "name": "get weather"}]), "invalid_value", "session.tools.0.name"),
            (update(tools=[{**WEATHER, "cache": True}]), "invalid_value", "session.tools.0.cache"),
            (update(parallel_tool_calls="no"), "invalid_value", None),
            (update(tools=[{"type": "mcp", "server_label": "x"}]), "unsupported_value", "session.tools.0.type"),
            (update(tools=[WEATHER, WEATHER]), "invalid_value", "session.tools"),
            (update(tools=[WEATHER], tool_choice={"type": "function", "name": "get_time"}), "invalid_value",
             "session.tool_choice"),
            (update(tool_choice="required"), "invalid_value", "session.tool_choice"),
            (update(tool_choice="sometimes"), "invalid_value", "session.tool_choice"),
            ({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_x",
                                                           "output": "?"}}, "unknown_call_id", "item.call_id"),
            ({"type": "conversation.item.create", "item": {"type": "function_call_output", "call_id": "call_x"}},
             "invalid_value", "item.output"),
            ({"type": "response.create", "response": {"tool_choice": "required"}}, "invalid_value",
             "response.tool_choice"),
            ({"type": "response.create", "response": {"instructions": "Be brief."}}, "unsupported_value",
             "response.instructions"),
        ]
        for event, code, param in cases:
            error = await answer(event)
            assert error["type"] == "error", event
            assert (error["error"]["code"], error["error"]["param"]) == (code, param), error
        fine = await answer(update(tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"}))
        assert fine["session"]["tools"] == [WEATHER]  # `strict` (monolith's) only when set
        assert fine["session"]["parallel_tool_calls"] is True
        assert fine["session"]["tool_choice"] == {"type": "function", "name": "get_weather"}
        partial = await answer(update(instructions="Be kind."))  # a partial update keeps the tools
        assert partial["session"]["tools"] == [WEATHER]


@pytest.mark.engine
@pytest.mark.asyncio(loop_scope="session")  # the shared vLLM engine lives in the session's loop
async def test_the_round_trip_on_the_tiny_llama(llama_engine: Any) -> None:
    """vLLM forces the call (`required`: a structural tag; `strict`: the arguments pinned to the
    schema), its hermes parser reads it; the result goes back and the model answers (random
    weights: some text)."""
    settings = real_llm_settings({"MONOLITH_LLM__MAX_MODEL_LEN": "1024", "MONOLITH_LLM__MAX_TOKENS": "140",
                                  "MONOLITH_LLM__TEMPERATURE": "0.0"})
    city = {**WEATHER, "strict": True, "parameters": {"type": "object", "properties": {"city": {
        "type": "string", "enum": ["Tokyo", "Paris"]}}, "required": ["city"], "additionalProperties": False}}
    async with serve_live(build_app(settings, builders={"llm": lambda s, n: SharedLLM(llama_engine)})) as live, \
            realtime_client(live).realtime.connect(model="gpt-realtime") as conn:
        seen: list[Any] = []
        await until(conn, "session.created", seen)
        await conn.session.update(session={"type": "realtime", "tools": [city], "tool_choice": "required",
                                           "parallel_tool_calls": False})
        updated = await until(conn, "session.updated", seen)
        assert updated.session.parallel_tool_calls is False
        await conn.conversation.item.create(item=ASK)
        await conn.response.create()
        call = await asyncio.wait_for(call_made(conn, seen), 120)
        assert json.loads(call.arguments)["city"] in ("Tokyo", "Paris")  # the schema held
        await conn.conversation.item.create(item={"type": "function_call_output", "call_id": call.call_id,
                                                  "output": RESULT})
        await until(conn, "conversation.item.done", seen)
        await conn.response.create(response={"tool_choice": "none"})
        done = await until(conn, "response.done", seen, timeout=120)
        assert done.response.status == "completed"
        assert all(item.type == "message" for item in done.response.output)
