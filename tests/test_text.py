"""One rule for where sentences end (TTS chunks, RAG chunks) and how pieces of text join."""

from __future__ import annotations

import pytest

from monolith.rag.splitting import split_text
from monolith.text import join_texts, normalised, sentence_ends, sentences
from monolith.voice.chunking import SentenceChunker

MIXED = "「はい。」と答えた。Dr. Smith は来ます。"


def test_closing_brackets_and_quotative_particles_stay_with_their_sentence() -> None:
    assert sentences(MIXED) == ["「はい。」と答えた。", "Dr. Smith は来ます。"]
    assert sentences("「はい。いいえ。」と答えた。次です。") == ["「はい。いいえ。」と答えた。", "次です。"]
    assert sentences("「はい。」次に行きます。") == ["「はい。」", "次に行きます。"]
    assert sentences("「本当？」って聞いた。") == ["「本当？」って聞いた。"]


@pytest.mark.parametrize("text, expected", [
    ("It costs 3.5 dollars. That is cheap! Right?", ["It costs 3.5 dollars.", "That is cheap!", "Right?"]),
    ("Ask Dr. Smith, e.g. on Monday. Mr. Lee agrees.", ["Ask Dr. Smith, e.g. on Monday.", "Mr. Lee agrees."]),
    ("J. Smith came. Then he left.", ["J. Smith came.", "Then he left."]),
    ('He said "Hi." Then he left.', ['He said "Hi."', "Then he left."]),
    ("Really?! Yes.", ["Really?!", "Yes."]),
    ("今日は晴れです。明日は雨でしょう！傘は？", ["今日は晴れです。", "明日は雨でしょう！", "傘は？"]),
])
def test_english_and_japanese_sentence_ends(text: str, expected: list[str]) -> None:
    assert sentences(text) == expected


def test_line_breaks_end_sentences_only_when_asked_blank_lines_always() -> None:
    assert sentences("wrapped\nline. Next") == ["wrapped\nline.", "Next"]
    assert sentences("wrapped\nline", line_breaks=True) == ["wrapped", "line"]
    assert sentences("para one\n\npara two") == ["para one", "para two"]


def test_streaming_text_reports_only_ends_more_text_cannot_undo() -> None:
    assert sentence_ends("Hello there.", final=False) == []  # "there.5"? a quote? wait for more
    assert sentence_ends("Hello there. ", final=False) == [12]
    assert sentence_ends("こんにちは。", final=False) == [6]  # no bracket open: done
    assert sentence_ends("「はい。", final=False) == []
    assert sentence_ends("「はい。」", final=False) == []  # と may follow
    assert sentence_ends("「はい。」と", final=False) == []


def stream_chunks(text: str, step: int = 2, **kwargs: int) -> list[str]:
    chunker = SentenceChunker(**{"min_chars": 4, **kwargs})
    out: list[str] = []
    for i in range(0, len(text), step):
        out.extend(chunker.push(text[i : i + step]))
    rest = chunker.flush()
    return out + ([rest] if rest else [])


def test_tts_chunks_and_rag_chunks_cut_at_the_same_ends() -> None:
    assert stream_chunks(MIXED) == ["「はい。」と答えた。", "Dr. Smith は来ます。"]
    assert split_text(MIXED, size=20, overlap=0) == ["「はい。」と答えた。", "Dr. Smith は来ます。"]


def test_join_puts_a_space_only_between_latin_pieces() -> None:
    assert join_texts(["Hello there.", "How are you?"]) == "Hello there. How are you?"
    assert join_texts(["hello", "world"]) == "hello world"
    assert join_texts(["今日は。", "晴れです。"]) == "今日は。晴れです。"
    assert join_texts(["今日は", "OK"]) == "今日はOK"
    assert join_texts(["", "  a ", "b"]) == "a b"


@pytest.mark.parametrize(("a", "b", "same"), [
    ("How are you?", "how are you", True),
    ("Hello  world.", " hello world", True),
    ("こんにちは、今日の天気を教えてください。", "こんにちは、今日の天気を教えてください", True),
    ("ＡＢＣ？", "abc", True),  # full-width forms
    ("Hello, world", "Hello world", False),  # a comma inside is part of what was heard
    ("how are", "how are you", False),
])
def test_normalised_transcripts_compare_the_words_not_the_final_punctuation(a: str, b: str, same: bool) -> None:
    assert (normalised(a) == normalised(b)) is same
