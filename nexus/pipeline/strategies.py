"""Pick one backend among ready candidates; each strategy also says why."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from nexus.backends.backend import Backend

Pick = tuple[Backend, str]
Score = Callable[[Backend], float]
Strategy = Callable[[Sequence[Backend], Score], Pick]


class Strategies:
    """Strategy state (the rotation counter) lives here, one instance per router."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self._counter = itertools.count()
        self._rng = rng or random.Random()

    def get(self, name: str) -> Strategy:
        return {"smart": self.smart, "round_robin": self.round_robin,
                "priority_only": self.priority_only, "random": self.random}[name]

    def smart(self, candidates: Sequence[Backend], score: Score) -> Pick:
        # Ties are broken by a rotating start, so equal backends share the traffic.
        start = next(self._counter) % len(candidates)
        best, best_score = candidates[start], score(candidates[start])
        for backend in (*candidates[start + 1:], *candidates[:start]):
            value = score(backend)
            if value > best_score:
                best, best_score = backend, value
        return best, f"smart score={best_score:.3f}"

    def round_robin(self, candidates: Sequence[Backend], score: Score) -> Pick:
        return candidates[next(self._counter) % len(candidates)], "round_robin"

    def priority_only(self, candidates: Sequence[Backend], score: Score) -> Pick:
        best = max(candidates, key=lambda b: b.config.priority)
        return best, f"priority_only priority={best.config.priority}"

    def random(self, candidates: Sequence[Backend], score: Score) -> Pick:
        return self._rng.choice(candidates), "random"
