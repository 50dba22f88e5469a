"""The smart score: priority × free capacity × speed × quality × stage adjustments.

`[routing.weights]` set how strongly each factor counts: each weight, divided by the
mean weight, is that factor's exponent (default 50/30/20 → 1.5, 0.9, 0.6).
"""

from __future__ import annotations

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

    def parts(self, backend: Backend, adjustment: float) -> ScoreParts:
        e_priority, e_load, e_latency = self.exponents
        priority = max(backend.config.priority, MIN_PRIORITY) / 100
        free = 1.0 - backend.load
        ema = backend.latency_ema_ms
        speed = 1.0 if ema is None else LATENCY_REFERENCE_MS / (LATENCY_REFERENCE_MS + ema)
        rate = backend.metrics.error_rate(self.min_requests)
        quality = 1.0 if rate is None else 1.0 - rate
        score = priority ** e_priority * free ** e_load * speed ** e_latency * quality * adjustment
        return ScoreParts(priority, free, speed, quality, adjustment, score)

    def score(self, backend: Backend, adjustment: float) -> float:
        return self.parts(backend, adjustment).score
