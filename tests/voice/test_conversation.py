"""History keeps what the listener heard: whole chunks, and a chunk heard in part cut by the
share of its audio that played; tool calls and their results."""

from __future__ import annotations

import pytest

from monolith.errors import InvalidRequest
from monolith.providers.llm import ChatMessage, ToolCall
from monolith.voice.conversation import Conversation, SpokenChunk, heard_text


def test_a_chunk_heard_in_part_is_cut_at_a_word() -> None:
    chunks = [SpokenChunk("First part here.", 0, 100), SpokenChunk("Second part follows.", 100, 100)]
    assert heard_text(chunks, 100) == "First part here."
    assert heard_text(chunks, 150) == "First part here. Second"  # half of it, back to a word
    assert heard_text(chunks, 400) == "First part here. Second part follows."
    assert heard_text(chunks, 0) == ""


def test_japanese_is_cut_by_character() -> None:
    assert heard_text([SpokenChunk("今日は晴れです。", 0, 80)], 40) == "今日は晴"


def test_truncating_replaces_the_answer_in_the_history() -> None:
    conversation = Conversation(history_turns=4)
    layout = conversation.layout("r1")
    layout.extend([SpokenChunk("One two.", 0, 16000), SpokenChunk("Three four.", 16000, 16000)])
    conversation.remember("count", "r1", "One two. Three four.")
    assert conversation.truncate("r1", 1500, 16000) == "One two. Three"
    assert [m.content for m in conversation.messages] == ["count", "One two. Three"]
    assert conversation.truncate("r1", 0, 16000) == ""
    assert [m.content for m in conversation.messages] == ["count"]  # nothing heard: no answer kept
    assert conversation.truncate("unknown", 10, 16000) is None


CALL = ToolCall("call_1", "get_weather", '{"city": "Tokyo"}')


def test_a_result_follows_its_call_and_the_prompt_leaves_out_calls_still_waiting() -> None:
    conversation = Conversation(history_turns=4)
    conversation.remember("weather?", "r1", "Let me check.", (CALL, ToolCall("call_2", "get_time", "{}")))
    conversation.remember("and you?", "r2", "Fine.")
    prompt = conversation.prompt()
    assert [m.role for m in prompt] == ["user", "assistant", "user", "assistant"]
    assert prompt[1] == ChatMessage("assistant", "Let me check.")  # the text stays, the pending calls go
    conversation.add_tool_result("call_2", "noon")
    conversation.add_tool_result("call_1", "sunny")
    assert [(m.role, m.tool_call_id) for m in conversation.messages] == [
        ("user", None), ("assistant", None), ("tool", "call_2"), ("tool", "call_1"), ("user", None), ("assistant", None)]
    assert conversation.prompt() == conversation.messages  # every call answered: all of it shown
    with pytest.raises(InvalidRequest) as twice:
        conversation.add_tool_result("call_1", "again")
    assert twice.value.code == "duplicate_call_output" and twice.value.param == "call_id"
    with pytest.raises(InvalidRequest) as unknown:
        conversation.add_tool_result("call_9", "x")
    assert unknown.value.code == "unknown_call_id"


def test_a_call_alone_is_left_out_of_the_prompt_until_its_result_comes() -> None:
    conversation = Conversation(history_turns=4)
    conversation.remember("weather?", "r1", "", (CALL,), {})
    assert conversation.messages[1] == ChatMessage("assistant", None, tool_calls=(CALL,))
    assert [m.role for m in conversation.prompt()] == ["user"]
    conversation.remember("", "r2", "", (ToolCall("call_2", "get_time", "{}"),), {"call_2": "noon"})  # came early
    assert [(m.role, m.tool_call_id) for m in conversation.prompt()] == [
        ("user", None), ("assistant", None), ("tool", "call_2")]


def test_trimming_keeps_results_with_their_calls() -> None:
    conversation = Conversation(history_turns=1)
    conversation.remember("weather?", "r1", "", (CALL,), {"call_1": "sunny"})
    assert [m.role for m in conversation.messages] == ["user", "assistant", "tool"]  # results do not count
    conversation.remember("", "r2", "Sunny.")
    assert [m.role for m in conversation.messages] == ["assistant", "tool", "assistant"]
    conversation.remember("thanks", "r3", "You're welcome.")
    assert [m.text for m in conversation.messages] == ["thanks", "You're welcome."]  # no orphan result left


def test_truncating_an_answer_that_called_keeps_its_calls() -> None:
    conversation = Conversation(history_turns=4)
    conversation.layout("r1").append(SpokenChunk("Let me check that.", 0, 16000))
    conversation.remember("weather?", "r1", "Let me check that.", (CALL,))
    assert conversation.truncate("r1", 0, 16000) == ""
    assert conversation.messages[1] == ChatMessage("assistant", None, tool_calls=(CALL,))
    conversation.add_tool_result("call_1", "sunny")  # the call is still answerable
