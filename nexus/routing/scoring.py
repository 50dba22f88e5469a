"""The smart score: priority × free capacity × speed × quality × stage adjustments.

`[routing.weights]` set how strongly each factor counts: each weight, divided by the
mean weight, is that factor's exponent (default 50/30/20 → 1.5, 0.9, 0.6).
This runs once per ready backend per request, so it reads plain slots and
precomputes what does not change.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from nexus.backends.backend import Backend
from nexus.config.schema import Weights

LATENCY_REFERENCE_MS = 100.0  # a backend this fast scores 0.5 on speed
MIN_PRIORITY = 1              # priority 0 still scores above nothing


class ScoreParts(msgspec.Struct, frozen=True):
    priority: float
    free_capacity: float
    speed: float
    quality: float
    adjustment: float
    score: float


class Scorer:
    def __init__(self, weights: Weights, min_requests: int) -> None:
        total = weights.priority + weights.load + weights.latency
        mean = total / 3 if total else 1.0
        self.exponents = (weights.priority / mean, weights.load / mean, weights.latency / mean) \
            if total else (1.0, 1.0, 1.0)
        self.min_requests = min_requests
        # priority ** exponent for every possible priority (0..100)
        self._priority_term = [(max(p, MIN_PRIORITY) / 100) ** self.exponents[0]
                               for p in range(101)]

    def parts(self, backend: Backend, adjustment: float) -> ScoreParts:
        """The score with its factors, for explanations."""
        priority, free, speed, quality = self._factors(backend)
        return ScoreParts(priority, free, speed, quality, adjustment,
                          self.score(backend, adjustment))

    def score(self, backend: Backend, adjustment: float) -> float:
        return self.score_all((backend,), {backend.name: adjustment})[0]

    def score_all(self, backends: Sequence[Backend], factors: dict[str, float]) -> list[float]:
        """Scores in one loop with locals only: this is the routing path's hottest code."""
        _, e_load, e_latency = self.exponents
        priority_term, min_requests = self._priority_term, self.min_requests
        scores: list[float] = []
        for backend in backends:
            state = backend.state
            ema = state.latency_ema_ms
            speed = 1.0 if ema is None else LATENCY_REFERENCE_MS / (LATENCY_REFERENCE_MS + ema)
            in_flight = state.in_flight + state.remote_in_flight  # the whole fleet's
            capacity = backend.max_concurrent
            free = 1.0 - in_flight / capacity if in_flight < capacity else 0.0
            # Window sums as QualityReconciler last moved them: exact within the minute.
            metrics = state.metrics
            total = metrics.successes + metrics.errors
            quality = 1.0 if total < min_requests else 1.0 - metrics.errors / total
            score: float = priority_term[backend.priority] * free ** e_load \
                * speed ** e_latency * quality
            scores.append(score * factors.get(backend.name, 1.0) if factors else score)
        return scores

    def _factors(self, backend: Backend) -> tuple[float, float, float, float]:
        ema = backend.latency_ema_ms
        rate = backend.metrics.error_rate(self.min_requests)
        return (max(backend.priority, MIN_PRIORITY) / 100, 1.0 - backend.load,
                1.0 if ema is None else LATENCY_REFERENCE_MS / (LATENCY_REFERENCE_MS + ema),
                1.0 if rate is None else 1.0 - rate)
