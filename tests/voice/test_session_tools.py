"""Tool calls in a voice session, driven directly: what the client gets (the call's events, no
audio for it), what the history keeps, what the LLM is shown, and held (preemptive) answers that
call a tool."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import pytest

from monolith.config import MockLLMConfig
from monolith.errors import InvalidRequest
from monolith.providers.llm import ChatMessage, FunctionTool, LLMChunk, SamplingOptions, ToolCall, ToolCallDelta
from monolith.providers.mock_llm import MockLLM
from monolith.voice.events import (
    ResponseAudio,
    ResponseDone,
    ResponseFunctionCall,
    ResponseFunctionCallDelta,
    ResponseStarted,
    TurnMetrics,
)
from monolith.voice.options import OptionsUpdate
from monolith.voice.session import VoiceSession
from monolith.voice.tools import FunctionChoice, SessionTool

from ..fakes import StepLLM, ToneTTS
from .test_preemptive import end_turn, pause, response_ids, until
from .test_session import Collect, started

SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
WEATHER = SessionTool(name="get_weather", description="The weather in a city", parameters=SCHEMA)
CALL = [LLMChunk("", tool_calls=(ToolCallDelta(0, id="call_1", name="get_weather"),)),
        LLMChunk("", tool_calls=(ToolCallDelta(0, arguments='{"city": '),)),
        LLMChunk("", tool_calls=(ToolCallDelta(0, arguments='"Tokyo"}'),))]
MADE = ToolCall("call_1", "get_weather", '{"city": "Tokyo"}')


class GatedTTS(ToneTTS):
    """Speaks only once the test lets it (`go`): the response stays running meanwhile."""

    def __init__(self) -> None:
        super().__init__()
        self.go = asyncio.Event()

    async def synthesize(self, text: str, *, voice: str, request_id: str, first_in_response: bool = True,
                         speed: float = 1.0) -> AsyncIterator[np.ndarray]:
        await self.go.wait()
        async for samples in super().synthesize(text, voice=voice, request_id=request_id):
            yield samples


async def with_tools(llm: StepLLM | MockLLM, **kwargs: object) -> tuple[VoiceSession, Collect]:
    session, sink, _ = await started(llm=llm, **kwargs)
    await session.update(OptionsUpdate(tools=[WEATHER]))
    return session, sink


async def test_a_call_goes_out_as_events_into_the_history_and_the_result_is_answered() -> None:
    llm = StepLLM(CALL)
    session, sink = await with_tools(llm)
    await session.on_text("What is the weather in Tokyo?")
    await sink.until(TurnMetrics)
    assert sink.kinds()[2:] == ["ResponseStarted", *["ResponseFunctionCallDelta"] * 3, "ResponseFunctionCall",
                                "ResponseDone", "TurnMetrics"]
    assert "".join(e.delta for e in sink.of(ResponseFunctionCallDelta)) == MADE.arguments  # type: ignore[attr-defined]
    assert sink.of(ResponseFunctionCall) == [ResponseFunctionCall("s1-1", "call_1", "get_weather", MADE.arguments)]
    assert sink.of(ResponseDone)[0].text == "" and not sink.of(ResponseAudio)  # type: ignore[attr-defined]
    assert llm.options[0].tools == (FunctionTool("get_weather", "The weather in a city", SCHEMA),)
    assert llm.options[0].tool_choice == "auto"
    assert session.history == [ChatMessage("user", "What is the weather in Tokyo?"),
                               ChatMessage("assistant", None, tool_calls=(MADE,))]
    assert not session.busy  # nothing waits for the result

    llm.reply = ["Sunny", ", 21 degrees."]
    await session.add_tool_result("call_1", "Sunny, 21 degrees.", respond=True)
    done = await sink.until(ResponseDone, 2)
    assert done.text == "Sunny, 21 degrees." and sink.of(ResponseAudio)  # type: ignore[attr-defined]
    assert llm.seen[1][1:] == [ChatMessage("user", "What is the weather in Tokyo?"),
                               ChatMessage("assistant", None, tool_calls=(MADE,)),
                               ChatMessage("tool", "Sunny, 21 degrees.", tool_call_id="call_1")]  # no user turn
    assert [m.role for m in session.history] == ["user", "assistant", "tool", "assistant"]
    await session.close()


async def test_text_before_a_call_is_spoken_and_a_result_that_comes_meanwhile_is_answered_after_it() -> None:
    llm, tts = StepLLM(["Let me check.", *CALL]), GatedTTS()
    session, sink = await with_tools(llm, tts=tts)
    await session.on_text("Weather in Tokyo?")
    await sink.until(ResponseFunctionCall)  # out while the text before it is still to be spoken
    assert session.busy and not sink.of(ResponseAudio)
    llm.reply = ["Sunny."]
    await session.add_tool_result("call_1", "sunny", respond=True)
    await asyncio.sleep(0.05)
    assert len(sink.of(ResponseStarted)) == 1  # the answer waits for this response to end...
    tts.go.set()
    await sink.until(ResponseDone, 2)  # ...then starts
    kinds = sink.kinds()
    assert kinds.index("ResponseTextDelta") < kinds.index("ResponseFunctionCall") < kinds.index("ResponseAudioStarted")
    assert [d.text for d in sink.of(ResponseDone)] == ["Let me check.", "Sunny."]  # type: ignore[attr-defined]
    assert session.history == [ChatMessage("user", "Weather in Tokyo?"),
                               ChatMessage("assistant", "Let me check.", tool_calls=(MADE,)),
                               ChatMessage("tool", "sunny", tool_call_id="call_1"),
                               ChatMessage("assistant", "Sunny.")]
    await session.close()


async def test_results_for_unknown_calls_or_twice_are_refused() -> None:
    llm = StepLLM(CALL)
    session, sink = await with_tools(llm)
    with pytest.raises(InvalidRequest) as unknown:
        await session.add_tool_result("call_1", "too early")
    assert unknown.value.code == "unknown_call_id" and unknown.value.param == "call_id"
    await session.on_text("Weather?")
    await sink.until(ResponseDone)
    await session.add_tool_result("call_1", "sunny")
    with pytest.raises(InvalidRequest) as twice:
        await session.add_tool_result("call_1", "sunny")
    assert twice.value.code == "duplicate_call_output"
    with pytest.raises(InvalidRequest) as long:
        await session.add_tool_result("call_1", "x" * 40000)
    assert long.value.param == "output"
    assert len(sink.of(ResponseStarted)) == 1  # respond=False: no answer asked for
    await session.close()


async def test_update_checks_the_tools_before_changing_anything() -> None:
    session, _, _ = await started(llm=StepLLM(["Hi."]))
    bad: list[tuple[OptionsUpdate, str]] = [
        (OptionsUpdate(tool_choice="required"), "needs tools"),
        (OptionsUpdate(tools=[WEATHER, WEATHER]), "declared twice"),
        (OptionsUpdate(tools=[WEATHER], tool_choice=FunctionChoice(type="function", name="get_time")), "not one of"),
    ]
    for update, message in bad:
        with pytest.raises(InvalidRequest, match=message):
            await session.update(update)
    assert session.options.tools == [] and session.options.tool_choice == "auto"
    await session.update(OptionsUpdate(tools=[WEATHER], tool_choice=FunctionChoice(type="function", name="get_weather")))
    with pytest.raises(InvalidRequest, match="not one of") as err:
        await session.update(OptionsUpdate(tools=[]))  # the named choice would be left without its tool
    assert err.value.param == "tool_choice"
    await session.close()


async def test_the_user_speaking_while_a_call_waits_takes_a_turn_and_the_late_result_goes_after_its_call() -> None:
    llm = StepLLM(CALL)
    session, sink = await with_tools(llm)
    await session.on_text("Weather?")
    await sink.until(ResponseDone)
    llm.reply = ["Okay."]
    await session.on_text("Never mind.")
    await sink.until(ResponseDone, 2)
    assert [m.role for m in llm.seen[1]] == ["system", "user", "user"]  # the waiting call is not shown
    await session.add_tool_result("call_1", "sunny")
    assert [(m.role, m.text) for m in session.history] == [
        ("user", "Weather?"), ("assistant", ""), ("tool", "sunny"), ("user", "Never mind."), ("assistant", "Okay.")]
    await session.create_response()
    await sink.until(ResponseDone, 3)
    assert [m.role for m in llm.seen[2]] == ["system", "user", "assistant", "tool", "user", "assistant"]
    await session.close()


async def test_a_held_answer_that_calls_is_flushed_on_release_and_never_seen_when_thrown_away() -> None:
    llm = StepLLM(CALL)
    session, sink, stt = await started(llm=llm, preemptive=True)
    await session.update(OptionsUpdate(tools=[WEATHER]))
    await pause(stt, "weather in tokyo")
    await until(lambda: len(llm.seen) == 1 and llm.running_requests() == 0)  # called, unheard
    await asyncio.sleep(0.02)
    assert not sink.of(ResponseStarted) and not sink.of(ResponseFunctionCall)
    llm.reply = ["Okay."]
    end_turn(stt, "weather in paris")  # other words: the held call is thrown away
    await sink.until(TurnMetrics)
    assert response_ids(sink) == {"s1-2"} and not sink.of(ResponseFunctionCallDelta)
    assert [m.text for m in session.history] == ["weather in paris", "Okay."]

    llm.reply = CALL
    await pause(stt, "and in tokyo", speech_end_ms=3000.0)
    await until(lambda: len(llm.seen) == 3 and llm.running_requests() == 0)
    assert not sink.of(ResponseFunctionCall)
    end_turn(stt, "And in Tokyo?", speech_end_ms=3000.0)  # the same words: released, its call goes out
    await sink.until(TurnMetrics, 2)
    kinds = sink.kinds()
    last = len(kinds) - 1 - kinds[::-1].index("ResponseStarted")
    assert kinds[last:] == ["ResponseStarted", *["ResponseFunctionCallDelta"] * 3, "ResponseFunctionCall",
                            "ResponseDone", "TurnMetrics"]
    assert session.history[-1] == ChatMessage("assistant", None, tool_calls=(MADE,))
    await session.add_tool_result("call_1", "sunny")
    await session.close()


async def test_a_call_cut_off_at_max_tokens_is_neither_sent_whole_nor_kept() -> None:
    llm = MockLLM(MockLLMConfig(first_token_ms=0, tokens_per_second=1000))
    session, sink = await with_tools(llm)
    session.speaker.sampling = SamplingOptions(max_tokens=3)
    await session.on_text("Call get_weather.")
    await sink.until(ResponseDone)
    assert sink.of(ResponseFunctionCallDelta) and not sink.of(ResponseFunctionCall)
    assert [m.role for m in session.history] == ["user"]
    await session.close()
