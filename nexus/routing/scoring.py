"""The smart score: priority × free capacity × speed × quality × cache × warmth × stage
adjustments.

`[routing.weights]` set how strongly each factor counts: each weight, divided by the
mean weight, is that factor's exponent (default 50/30/20 → 1.5, 0.9, 0.6).

Free capacity counts the fleet's requests in flight against the backend's slots, or,
while its engine's own reading is fresh, what the engine says runs and waits there
(traffic that does not pass through this fleet counts too) against the slots it
reports. Cache is the room left in the engine's KV cache (it matters near full);
warmth prefers a server with the model in memory over one that must load it. A latency
average fades back to neutral as it ages (LATENCY_HALF_LIFE_SECONDS), so a backend
that was slow once is tried again and its average can recover.

This runs once per ready backend per request, so it reads plain slots and
precomputes what does not change.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import msgspec

from nexus.backends.backend import Backend
from nexus.config.schema import Weights

LATENCY_REFERENCE_MS = 100.0  # a backend this fast scores 0.5 on speed
LATENCY_HALF_LIFE_SECONDS = 30.0  # an average this old counts half
MIN_PRIORITY = 1              # priority 0 still scores above nothing
COLD = 0.5                    # warmth of a server that must load the model first


class ScoreParts(msgspec.Struct, frozen=True):
    priority: float
    free_capacity: float
    speed: float
    quality: float
    adjustment: float
    score: float
    cache: float = 1.0    # room left in the engine's KV cache (1: empty or not reported)
    warmth: float = 1.0   # 1: the model is loaded (or nothing says it is not)


def capacity(backend: Backend, now: float) -> tuple[int, int]:
    """(busy, slots): requests on the backend and how many it serves at once. Busy is
    the fleet's own count (always fresh) plus the traffic from elsewhere the engine
    last reported; slots the engine's own, while its reading is fresh."""
    state = backend.state
    busy, slots = state.in_flight + state.remote_in_flight, backend.max_concurrent
    engine = state.engine
    if engine is not None and now - engine.read_at <= engine.max_age:
        busy += engine.outside
        said = engine.capacity
        if said:
            slots = min(slots, said)
    return busy, slots


def warmth(backend: Backend, model: str, now: float) -> float:
    engine = backend.state.engine
    if engine is None or engine.loaded is None or now - engine.read_at > engine.max_age:
        return 1.0
    return 1.0 if model in engine.loaded else COLD


def cold_reason(backend: Backend, model: str) -> str:
    """Why a cold backend scores lower: the load a request there waits for first."""
    seconds = backend.load_seconds.get(model)
    cost = f"its last load there took {seconds:g} s" if seconds is not None \
        else "its load time there is not measured yet"
    return f"cold: {model} is not in memory on {backend.name} and loads first ({cost})"


def cache_room(backend: Backend, now: float) -> float:
    engine = backend.state.engine
    if engine is None or engine.kv_usage is None or now - engine.read_at > engine.max_age:
        return 1.0
    return 1.0 - engine.kv_usage ** 2


def speed_of(backend: Backend, now: float) -> float:
    state = backend.state
    ema = state.latency_ema_ms
    if ema is None:
        return 1.0
    # Trust in the average halves over the first half-life, and keeps falling after.
    trust = LATENCY_HALF_LIFE_SECONDS / (LATENCY_HALF_LIFE_SECONDS + now - state.latency_at)
    return 1.0 - trust * (ema / (LATENCY_REFERENCE_MS + ema))


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

    def parts(self, backend: Backend, adjustment: float, model: str = "") -> ScoreParts:
        """The score with its factors, for explanations."""
        now = time.monotonic()
        busy, slots = capacity(backend, now)
        rate = backend.metrics.error_rate(self.min_requests)
        return ScoreParts(max(backend.priority, MIN_PRIORITY) / 100,
                          max(0.0, 1.0 - busy / slots), speed_of(backend, now),
                          1.0 if rate is None else 1.0 - rate, adjustment,
                          self.score_all((backend,), {backend.name: adjustment}, model)[0],
                          cache_room(backend, now), warmth(backend, model, now))

    def score(self, backend: Backend, adjustment: float) -> float:
        return self.score_all((backend,), {backend.name: adjustment})[0]

    def score_all(self, backends: Sequence[Backend], factors: dict[str, float],
                  model: str = "") -> list[float]:
        """Scores in one loop with locals only: this is the routing path's hottest code."""
        _, e_load, e_latency = self.exponents
        priority_term, min_requests = self._priority_term, self.min_requests
        now, half_life, reference = time.monotonic(), LATENCY_HALF_LIFE_SECONDS, \
            LATENCY_REFERENCE_MS
        scores: list[float] = []
        for backend in backends:
            state = backend.state
            ema = state.latency_ema_ms
            if ema is None:
                speed = 1.0
            else:  # speed_of, inline: this loop runs for every ready backend
                speed = 1.0 - half_life / (half_life + now - state.latency_at) \
                    * ema / (reference + ema)
            if state.engine is None:  # the common case, inline: no engine reading
                in_flight = state.in_flight + state.remote_in_flight  # the whole fleet's
                slots, engine_terms = backend.max_concurrent, 1.0
            else:
                in_flight, slots = capacity(backend, now)
                engine_terms = cache_room(backend, now) * warmth(backend, model, now)
            free = 1.0 - in_flight / slots if in_flight < slots else 0.0
            # Window sums as QualityReconciler last moved them: exact within the minute.
            metrics = state.metrics
            total = metrics.successes + metrics.errors
            quality = 1.0 if total < min_requests else 1.0 - metrics.errors / total
            score: float = priority_term[backend.priority] * free ** e_load \
                * speed ** e_latency * quality * engine_terms
            scores.append(score * factors.get(backend.name, 1.0) if factors else score)
        return scores
