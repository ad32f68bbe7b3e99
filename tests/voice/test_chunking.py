"""Sentence chunking for TTS: Japanese and English ends, a short first chunk, length bounds."""

from __future__ import annotations

from monolith.voice.chunking import SentenceChunker


def stream(chunker: SentenceChunker, text: str, step: int = 3) -> list[str]:
    out: list[str] = []
    for i in range(0, len(text), step):
        out.extend(chunker.push(text[i : i + step]))
    rest = chunker.flush()
    return out + ([rest] if rest else [])


def test_japanese_sentence_ends() -> None:
    chunks = stream(SentenceChunker(min_chars=4), "今日は晴れです。明日は雨でしょう！傘を持っていきますか？")
    assert chunks == ["今日は晴れです。", "明日は雨でしょう！", "傘を持っていきますか？"]


def test_english_period_needs_a_following_space() -> None:
    chunks = stream(SentenceChunker(min_chars=4), "It costs 3.5 dollars. That is cheap! Right?")
    assert chunks == ["It costs 3.5 dollars.", "That is cheap!", "Right?"]


def test_newline_ends_a_chunk() -> None:
    assert stream(SentenceChunker(min_chars=4), "first line\nsecond line") == ["first line", "second line"]


def test_too_short_sentences_are_merged() -> None:
    chunks = stream(SentenceChunker(min_chars=8), "はい。そうです。わかりました。")
    assert chunks == ["はい。そうです。", "わかりました。"]


def test_first_chunk_is_cut_early_at_a_soft_break() -> None:
    text = "This answer has no sentence end for quite a while, so the first chunk is cut at a comma, and the rest waits"
    chunks = stream(SentenceChunker(min_chars=4, max_chars=200, first_max_chars=60), text)
    assert chunks[0] == "This answer has no sentence end for quite a while,"
    assert len(chunks[0]) <= 60
    assert " ".join(chunks) == text


def test_hard_cut_when_there_is_no_break() -> None:
    chunks = stream(SentenceChunker(min_chars=2, max_chars=10, first_max_chars=5), "あ" * 23)
    assert [len(c) for c in chunks] == [5, 10, 8]
