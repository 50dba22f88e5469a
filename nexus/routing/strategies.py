"""Pick one backend among ready candidates; each strategy also says why."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from nexus.backends.backend import Backend

Pick = tuple[Backend, str]
ScoreAll = Callable[[Sequence[Backend]], list[float]]  # only `smart` asks for scores
Strategy = Callable[[Sequence[Backend], ScoreAll], Pick]


class Strategies:
    """Strategy state (the rotation counter) lives here, one instance per router."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._counter = itertools.count()
        self._rng = rng or random.Random()

    def get(self, name: str) -> Strategy:
        return {"smart": self.smart, "round_robin": self.round_robin,
                "priority_only": self.priority_only, "random": self.random}[name]

    def smart(self, candidates: Sequence[Backend], score_all: ScoreAll) -> Pick:
        scores = score_all(candidates)
        best = max(scores)
        if scores.count(best) == 1:
            return candidates[scores.index(best)], f"smart score={best:.3f}"
        # Ties take turns, so equal backends share the traffic.
        tied = [i for i, score in enumerate(scores) if score == best]
        return candidates[tied[next(self._counter) % len(tied)]], f"smart score={best:.3f}"

    def round_robin(self, candidates: Sequence[Backend], score_all: ScoreAll) -> Pick:
        return candidates[next(self._counter) % len(candidates)], "round_robin"

    def priority_only(self, candidates: Sequence[Backend], score_all: ScoreAll) -> Pick:
        best = max(candidates, key=lambda b: b.priority)
        return best, f"priority_only priority={best.priority}"

    def random(self, candidates: Sequence[Backend], score_all: ScoreAll) -> Pick:
        return self._rng.choice(candidates), "random"
