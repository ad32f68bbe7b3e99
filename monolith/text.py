"""Where sentences end, and how texts join: one rule for TTS chunks, RAG chunks and transcripts.

A sentence ends after 。！？．!? or a period, with any closing quotes and brackets that follow
(`「はい。」` is one sentence). It does not end:
- inside 「」『』（）【】 (`「はい。いいえ。」と答えた。` is one sentence), nor after a closing
  bracket followed by a quotative particle (`「本当？」と聞いた`);
- at a period that is not followed by whitespace (`3.5`, `e.g.` inside a word), or that closes an
  abbreviation (`Dr.`, `Mr.`, `e.g.`, `etc.`, a single initial such as `J.`);
- at ! ? . without whitespace after them (`?!` goes on, `Really?"` waits for its quote).
A blank line always ends one; a single line break does when `line_breaks` is set (an LLM's
answer lines, not a document's wrapped lines).

Streaming text (`final=False`) reports only ends that more text cannot undo: a period at the
end of the buffer waits for the next character, a Japanese ender at the end ends at once unless
a bracket is open."""

from __future__ import annotations

import re
import unicodedata

FULL_ENDERS = frozenset("。！？．")
LATIN_ENDERS = frozenset("!?.")
CLOSERS = frozenset("」』）)］]】〉》”’\"'")
BRACKETS = {"「": "」", "『": "』", "（": "）", "【": "】"}
QUOTATIVE = ("と", "って", "っ")  # 「…」と言った: the quote is part of the sentence
ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "etc", "e.g", "i.e", "no", "fig", "approx", "inc",
     "ltd", "co", "mt", "cf", "al"}
)
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")


def _is_abbreviation(text: str, dot: int) -> bool:
    match = _WORD_BEFORE.search(text[:dot])
    if match is None:
        return False
    word = match.group(1).lower()
    return word in ABBREVIATIONS or (len(word) == 1 and text[dot - 1].isupper())


def sentence_ends(text: str, *, final: bool = True, line_breaks: bool = False) -> list[int]:
    """Indices just past each sentence end (its closing brackets included)."""
    ends: list[int] = []
    depth: list[str] = []  # open Japanese brackets
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in BRACKETS:
            depth.append(BRACKETS[ch])
        elif depth and ch == depth[-1]:
            depth.pop()
            if not depth and i and (text[i - 1] in FULL_ENDERS or text[i - 1] in LATIN_ENDERS):
                end = _end_after(text, i - 1, final)  # 「はい。」 ends with its bracket...
                if end is None:
                    break
                if end > 0:  # ...unless a quotative particle follows: 「はい。」と答えた。
                    ends.append(end)
                    i = end
                    continue
        elif ch == "\n":
            blank = text.startswith("\n", i + 1) or bool(re.match(r"\n[ \t]*\n", text[i:]))
            if (line_breaks or blank) and text[:i].strip():
                ends.append(i)
            depth.clear()  # a line break closes whatever a stray bracket opened
        elif (ch in FULL_ENDERS or ch in LATIN_ENDERS) and not depth:
            end = _end_after(text, i, final)
            if end is None:  # undecided: more text is needed
                break
            if end > 0:
                ends.append(end)
                i = end
                continue
        i += 1
    return [e for k, e in enumerate(ends) if k == 0 or e > ends[k - 1]]


def _end_after(text: str, i: int, final: bool) -> int | None:
    """Where the sentence whose ender is at `i` ends; 0 when it does not end here; None when the
    text so far cannot tell (streaming)."""
    n = len(text)
    j = i
    while j < n and (text[j] in FULL_ENDERS or text[j] in LATIN_ENDERS):
        j += 1  # ?!, ！？, ...
    latin = text[j - 1] in LATIN_ENDERS
    while j < n and text[j] in CLOSERS:
        j += 1
    if j == n:
        if final:
            return j
        # more text may be a closing quote, a particle, a space or a digit
        return None if latin or j > i + 1 and text[j - 1] in CLOSERS else j
    after = text[j]
    if text[j - 1] in CLOSERS and text.startswith(QUOTATIVE, j):
        return 0
    if latin:
        if not after.isspace():
            return 0  # 3.5, e.g.x, ?!x
        if text[i] == "." and j == i + 1 and _is_abbreviation(text, i):
            return 0
    return j


def sentences(text: str, *, line_breaks: bool = False) -> list[str]:
    """The sentences of a whole text, stripped."""
    out: list[str] = []
    start = 0
    for end in [*sentence_ends(text, final=True, line_breaks=line_breaks), len(text)]:
        piece = text[start:end].strip()
        if piece:
            out.append(piece)
        start = end
    return out


def join_texts(parts: list[str]) -> str:
    """Join pieces of one text (TTS chunks, utterances, sentences): a space between two Latin
    pieces, none where either side is Japanese."""
    out = ""
    for part in (p.strip() for p in parts):
        if not part:
            continue
        if out and out[-1].isascii() and part[0].isascii():
            out += " "
        out += part
    return out


_TRAILING_MARKS = "".join(FULL_ENDERS | LATIN_ENDERS | CLOSERS) + "、,，…・ "


def normalised(text: str) -> str:
    """A transcript reduced to its words, to tell whether two transcripts say the same thing:
    NFKC (full-width forms), case folded, runs of spaces made one, trailing punctuation dropped
    (`Hello world.` and `hello  world` are the same words; `Hello, world` is not `Hello world`)."""
    folded = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return folded.rstrip(unicodedata.normalize("NFKC", _TRAILING_MARKS))
