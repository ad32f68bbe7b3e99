"""History keeps what the listener heard: whole chunks, and a chunk heard in part cut by the
share of its audio that played."""

from __future__ import annotations

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
