"""Pick one backend among routable candidates; each strategy also says why."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Sequence

from nexus.backends.backend import Backend
from nexus.config.schema import Weights

LATENCY_REFERENCE_MS = 100.0  # a backend this fast scores 0.5 on latency

Pick = tuple[Backend, str]


def latency_score(backend: Backend) -> float:
    ema = backend.latency_ema_ms
    return 1.0 if ema is None else LATENCY_REFERENCE_MS / (LATENCY_REFERENCE_MS + ema)


def smart_score(backend: Backend, weights: Weights) -> float:
    total = weights.priority + weights.load + weights.latency or 1.0
    return (weights.priority * backend.config.priority / 100
            + weights.load * (1.0 - backend.load)
            + weights.latency * latency_score(backend)) / total


class Strategies:
    """Strategy state (round-robin counters) lives here, one instance per router."""

    def __init__(self, weights: Weights, rng: random.Random | None = None) -> None:
        self.weights = weights
        self._counter = itertools.count()
        self._rng = rng or random.Random()

    def get(self, name: str) -> Callable[[Sequence[Backend]], Pick]:
        return {"smart": self.smart, "round_robin": self.round_robin,
                "priority_only": self.priority_only, "random": self.random}[name]

    def smart(self, candidates: Sequence[Backend]) -> Pick:
        # Ties are broken by a rotating start, so equal backends share the traffic.
        start = next(self._counter) % len(candidates)
        ordered = [*candidates[start:], *candidates[:start]]
        best = max(ordered, key=lambda b: smart_score(b, self.weights))
        return best, f"smart score={smart_score(best, self.weights):.3f}"

    def round_robin(self, candidates: Sequence[Backend]) -> Pick:
        return candidates[next(self._counter) % len(candidates)], "round_robin"

    def priority_only(self, candidates: Sequence[Backend]) -> Pick:
        best = max(candidates, key=lambda b: b.config.priority)
        return best, f"priority_only priority={best.config.priority}"

    def random(self, candidates: Sequence[Backend]) -> Pick:
        return self._rng.choice(candidates), "random"
