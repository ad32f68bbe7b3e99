"""Chunks follow sentence ends in Japanese and English, stay under the size, and overlap."""

from __future__ import annotations

from monolith.rag.splitting import sentences, split_text


def test_sentences_end_at_japanese_and_english_enders() -> None:
    text = "東京タワーは1958年に完成しました。高さは333メートルです！Mr. Smith went home. Was he tired? Yes.\n\nNext paragraph"
    assert sentences(text) == [
        "東京タワーは1958年に完成しました。", "高さは333メートルです！",
        "Mr. Smith went home.", "Was he tired?", "Yes.", "Next paragraph",
    ]


def test_quoted_question_followed_by_to_is_one_sentence() -> None:
    assert sentences("「本当？」と彼は聞いた。そうです。") == ["「本当？」と彼は聞いた。", "そうです。"]


def test_decimal_points_and_versions_do_not_end_sentences() -> None:
    assert sentences("Version 2.5 costs 3.99 dollars. Done.") == ["Version 2.5 costs 3.99 dollars.", "Done."]


def test_chunks_respect_the_size_and_never_cut_a_sentence_that_fits() -> None:
    text = "".join(f"これは{i}番目の文です。" for i in range(30))
    chunks = split_text(text, size=50, overlap=0)
    assert all(len(c) <= 50 for c in chunks)
    assert all(c.endswith("です。") for c in chunks)
    assert "".join(chunks) == text  # no overlap: nothing lost, nothing repeated


def test_overlap_repeats_the_last_sentences_of_the_previous_chunk() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(12))
    chunks = split_text(text, size=90, overlap=40)
    for previous, current in zip(chunks, chunks[1:], strict=False):
        last = sentences(previous)[-1]
        assert current.startswith(last)
    covered = {s for c in chunks for s in sentences(c)}
    assert covered == set(sentences(text))


def test_a_sentence_longer_than_the_size_is_cut_at_commas_then_hard() -> None:
    long = "、".join(["ながいぶんしょう"] * 20) + "。"
    chunks = split_text(long, size=40, overlap=0)
    assert all(len(c) <= 40 for c in chunks)
    assert chunks[0].endswith("、")
    assert split_text("x" * 100, size=30, overlap=5) == ["x" * 30, "x" * 30, "x" * 30, "x" * 10]


def test_latin_sentences_are_joined_with_a_space_japanese_without() -> None:
    assert split_text("One. Two.", size=100, overlap=0) == ["One. Two."]
    assert split_text("一つ。二つ。", size=100, overlap=0) == ["一つ。二つ。"]


def test_empty_text_has_no_chunks() -> None:
    assert split_text("  \n\n ", size=100, overlap=10) == []
