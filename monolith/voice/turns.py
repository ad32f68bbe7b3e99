"""How the server ends a user's turn: the STT's end-of-turn policy built from `[voice]`, and the
count of turns ended, and ended too early, by rule. A turn ended too early when the user spoke
again within a second while its answer was still coming: they went on, rather than replied."""

from __future__ import annotations

from monolith import metrics
from monolith.config import VoiceConfig
from monolith.turn_end import EndOfTurn, Rule

ENDED_EARLY_MS = 1000.0  # speech again this soon after a turn ended: the turn ended too early


def end_of_turn_policy(config: VoiceConfig) -> EndOfTurn | None:
    """The STT's end-of-turn policy; None: its own fixed rule, no pauses (preemptive off and
    end_of_turn = "fixed", exactly the STT as it always was)."""
    adaptive = config.end_of_turn == "adaptive"
    if not (config.preemptive or adaptive):
        return None
    return EndOfTurn(pause_ms=config.end_of_turn_pause_ms, adaptive=adaptive,
                     complete_ms=config.end_of_turn_complete_ms, incomplete_ms=config.end_of_turn_incomplete_ms,
                     complete_endings=tuple(config.end_of_turn_complete_endings),
                     incomplete_endings=tuple(config.end_of_turn_incomplete_endings))


class TurnEnds:
    """Where the last turn ended (input audio ms) and by which rule, until speech starts again."""

    def __init__(self, policy: EndOfTurn | None) -> None:
        self.policy = policy
        self.last: tuple[float, Rule] | None = None

    def ended(self, at_ms: float, text: str) -> None:
        rule = self.policy.rule(text) if self.policy is not None else "fixed"
        metrics.TURNS_ENDED.labels(rule).inc()
        self.last = (at_ms, rule)

    def speech_started(self, onset_ms: float, *, answering: bool) -> None:
        if self.last is not None and answering and onset_ms - self.last[0] < ENDED_EARLY_MS:
            metrics.TURNS_ENDED_EARLY.labels(self.last[1]).inc()
        self.last = None

    def reset(self) -> None:
        """Forget the last turn's end: the input audio starts again from zero (a new STT
        stream), or a typed turn came after it."""
        self.last = None
