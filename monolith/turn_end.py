"""When a user's turn ends: how much silence after their speech, given what they said so far.

The fixed rule (the default) waits the recognizer's own silence (`[stt] vad_silence_ms`) after
anything. The adaptive rule waits less after a complete sentence (it ends with 。？?！! or with
an ending such as ですか or ください) and longer after a trailing particle, conjunction or filler
(けど, から, and, so, um...), where people pause mid-thought; after anything else, the fixed
silence. Latin endings are whole words, the others (Japanese) match the end of the text.

With `pause_ms` set the recognizer also reports a pause: that much silence after speech, before
the turn's silence has run out, with the transcript as it stands (so an answer can be started on
it) and, when speech returns first, that the user resumed. The pause is also the shortest
silence any rule can end a turn after (the recognizer learns the text at the pause).

This module sits at the bottom of the import layers: the session builds the policy from its
config, the STT providers apply it, and neither needs the other."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Literal

Rule = Literal["fixed", "complete", "incomplete"]

SENTENCE_ENDERS = frozenset("。．.？?！!")
CLOSERS = "」』）)]\"'”’"
SOFT_ENDERS = ("、", ",", "，", "…", "...", "-")  # more is coming
COMPLETE_ENDINGS = ("か", "かな", "ください", "です", "ます", "でした", "ました", "ません", "ね", "よ")
INCOMPLETE_ENDINGS = (
    "けど", "けれど", "けれども", "が", "から", "ので", "のに", "て", "で", "し", "たら", "ば", "えっと", "あの",
    "and", "or", "but", "so", "because", "um", "uh", "er", "the", "a", "an", "to", "of", "with", "if",
)


@dataclass(frozen=True)
class EndOfTurn:
    """The end-of-turn policy of one stream. `None` in its place means the provider's fixed rule
    without pauses, exactly as before this policy existed."""

    pause_ms: float | None = None  # report pauses after this much silence (None: no pauses)
    adaptive: bool = False
    complete_ms: float = 300.0
    incomplete_ms: float = 1000.0
    complete_endings: tuple[str, ...] = COMPLETE_ENDINGS
    incomplete_endings: tuple[str, ...] = INCOMPLETE_ENDINGS

    def rule(self, text: str | None) -> Rule:
        """Which silence `text` (the transcript so far) calls for."""
        if not self.adaptive or not text:
            return "fixed"
        said = unicodedata.normalize("NFKC", text).strip().rstrip(CLOSERS).rstrip()
        if not said:
            return "fixed"
        if said.endswith(SOFT_ENDERS):
            return "incomplete"
        if said[-1] in SENTENCE_ENDERS:
            return "complete"
        if _ends_with(said, self.incomplete_endings):
            return "incomplete"
        if _ends_with(said, self.complete_endings):
            return "complete"
        return "fixed"

    def silence_ms(self, text: str | None, default_ms: float) -> float:
        """The silence after speech that ends the turn; `default_ms` is the provider's fixed rule."""
        rule = self.rule(text)
        return self.complete_ms if rule == "complete" else self.incomplete_ms if rule == "incomplete" else default_ms


def _ends_with(said: str, endings: tuple[str, ...]) -> bool:
    words = said.split()
    last_word = words[-1].strip(",.;:!?\"'").casefold() if words else ""
    for ending in endings:
        if ending.isascii():
            if last_word == ending.casefold():
                return True
        elif said.endswith(ending):
            return True
    return False
