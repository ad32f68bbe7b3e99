"""Function calling on `/v1/voice` (monolith.voice.v1) on the mock providers: tools in
`session.update`, the call as `response.function_call`, the result as `tool.result`, the answer
spoken; bad tools and results answered with errors naming the field."""

from __future__ import annotations

import json
from typing import Any

from .conftest import LiveServer, connect

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city", "parameters": SCHEMA}
RESULT = "It is sunny in Tokyo, 21 degrees."


async def test_a_tool_round_trip(live: LiveServer) -> None:
    client = await connect(live)
    await client.send_json({"type": "session.update", "session": {"tools": [WEATHER]}})
    updated = await client.wait_for("session.updated")
    assert updated["options"]["tools"] == [WEATHER] and updated["options"]["tool_choice"] == "auto"
    await client.send_json({"type": "input_text", "text": "Please call get_weather for Tokyo."})
    started = await client.wait_for("response.started")
    call = await client.wait_for("response.function_call")
    done = await client.wait_for("response.done")
    assert call["response_id"] == done["response_id"] == started["response_id"]
    assert call["name"] == "get_weather" and json.loads(call["arguments"]) == {"city": "string"}
    assert call["call_id"].startswith("call_")
    assert done["text"] == "" and not client.audio  # the call is not spoken
    await client.wait_for("turn.metrics")

    await client.send_json({"type": "tool.result", "call_id": call["call_id"], "output": RESULT})  # respond: true
    answer = await client.wait_for("response.done")
    assert answer["text"] == RESULT and client.audio
    session = next(iter(live.app.state.voice.sessions.values()))
    assert [(m.role, m.tool_call_id) for m in session.history] == [
        ("user", None), ("assistant", None), ("tool", call["call_id"]), ("assistant", None)]
    await client.ws.close()


async def test_a_result_with_respond_false_waits_for_the_next_turn(live: LiveServer) -> None:
    client = await connect(live)
    strict = {**WEATHER, "strict": True}
    await client.send_json({"type": "session.update", "session": {"tools": [strict], "tool_choice": "required",
                                                                  "parallel_tool_calls": False}})
    options = (await client.wait_for("session.updated"))["options"]
    assert options["tools"] == [strict] and options["parallel_tool_calls"] is False
    await client.send_json({"type": "input_text", "text": "Weather?"})
    call = await client.wait_for("response.function_call")
    await client.wait_for("turn.metrics")
    await client.send_json({"type": "tool.result", "call_id": call["call_id"], "output": RESULT, "respond": False})
    await client.send_json({"type": "session.update", "session": {"tool_choice": "none"}})
    await client.wait_for("session.updated")  # nothing else came in between
    mock = live.registry.slots["llm"].primary
    assert mock.last_options.tools[0].strict is True and mock.last_options.parallel_tool_calls is False
    assert [e["type"] for e in client.events[-2:]] == ["turn.metrics", "session.updated"]
    await client.ws.close()


async def test_bad_tools_and_results_get_errors_naming_the_field(live: LiveServer) -> None:
    client = await connect(live)

    async def error_for(message: dict[str, Any]) -> dict[str, Any]:
        await client.send_json(message)
        error = await client.wait_for("error")
        return dict(error["error"])

    def update(**session: Any) -> dict[str, Any]:
        return {"type": "session.update", "session": session}

    cases: list[tuple[dict[str, Any], str, str | None]] = [
        (update(tools=[{**WEATHER, "name": "get weather"}]), "invalid_value", "tools.0.name"),
        (update(tools=[{**WEATHER, "parameters": "city"}]), "invalid_value", "tools.0.parameters"),
        (update(tools=[WEATHER, WEATHER]), "invalid_value", "tools"),
        (update(tool_choice="sometimes"), "invalid_value", "tool_choice"),
        (update(tool_choice="required"), "invalid_value", "tool_choice"),
        (update(tools=[WEATHER], tool_choice={"type": "function", "name": "get_time"}), "invalid_value", "tool_choice"),
        ({"type": "tool.result", "call_id": "call_x", "output": "?"}, "unknown_call_id", "call_id"),
        ({"type": "tool.result", "call_id": "call_x"}, "invalid_message", None),
    ]
    for message, code, param in cases:
        error = await error_for(message)
        assert (error["code"], error["param"]) == (code, param), (message, error)
    await client.send_json(update(tools=[WEATHER]))
    assert (await client.wait_for("session.updated"))["options"]["tools"] == [WEATHER]
    await client.ws.close()
