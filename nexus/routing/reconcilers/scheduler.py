"""SchedulerReconciler: drop what cannot serve, then Route, Queue or Reject."""

from __future__ import annotations

import time

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.health import Health
from nexus.config.schema import QueueConfig
from nexus.routing.affinity import Affinity, AffinityKey
from nexus.routing.intent import RoutingIntent
from nexus.routing.scoring import ScoreParts, Scorer, capacity, cold_reason, warmth
from nexus.routing.strategies import Strategy
from nexus.routing.types import Queue, Reject, RejectionReason, Route, RoutingDecision

STAGE = "SchedulerReconciler"
DEFAULT_WAIT_MS = 1000  # the wait guessed for a full backend that has no latency yet


class SchedulerReconciler:
    name = STAGE

    def __init__(self, strategy: Strategy, scorer: Scorer, queue: QueueConfig,
                 affinity: Affinity | None = None) -> None:
        self.strategy = strategy
        self.scorer = scorer
        self.queue = queue
        self.affinity = affinity  # None: the strategy alone picks

    def reconcile(self, intent: RoutingIntent) -> None:
        intent.keep(STAGE, [b for b in intent.candidates if not b.health.down], _down)

    def decide(self, intent: RoutingIntent) -> RoutingDecision:
        now = time.monotonic()
        ready = [b for b in intent.candidates if b.health.routable and (
            b.fleet_in_flight < b.max_concurrent if b.state.engine is None
            else b.fleet_in_flight < capacity(b, now)[1])]  # the engine's slots, if said
        if ready:
            route = self._route(intent, ready)
            if len(ready) == len(intent.candidates):  # nothing loading, nothing full
                return route
            preferred = self._preferred_loading(intent, ready)
            if preferred is None:
                return route
            return Queue(reason=f"{preferred.name} is preferred and {_busy(preferred)}",
                         estimated_wait_ms=_wait_ms(preferred), fallback=route)
        if intent.candidates:
            return self._queue(intent)
        return Reject(rejection_reasons=intent.rejection_reasons, model_known=intent.model_served)

    def score_table(self, intent: RoutingIntent) -> list[tuple[Backend, ScoreParts]]:
        """Every remaining candidate's score and its factors, best first (for explain)."""
        factors, model = intent.factors(), intent.resolved_model
        rows = [(b, self.scorer.parts(b, factors.get(b.name, 1.0), model))
                for b in intent.candidates]
        return sorted(rows, key=lambda row: -row[1].score)

    def _route(self, intent: RoutingIntent, ready: list[Backend]) -> Route:
        score_all, factors, model = self.scorer.score_all, intent.factors(), intent.resolved_model
        backend, why = self.strategy(ready, lambda backends: score_all(backends, factors, model))
        key, affinity = intent.affinity, self.affinity
        if key is not None and affinity is not None and not backend.is_cloud:
            backend, why = _with_affinity(key, affinity, intent.resolved_model, ready,
                                          backend, why)
        reason = why
        if backend.state.engine is not None and \
                warmth(backend, intent.resolved_model, time.monotonic()) < 1.0:
            reason += "; " + cold_reason(backend, intent.resolved_model)
        if intent.fallback_model:
            reason += f"; fallback={intent.resolved_model}"
        if intent.attempt:
            reason += f"; retry={intent.attempt}"
        paid = intent.costs.get(backend.name, 0)
        cost = msgspec.structs.replace(intent.cost_estimate, cost_micro_usd=paid) \
            if paid else intent.cost_estimate
        return Route(backend=backend, model=intent.resolved_model,
                     requested_model=intent.requested_model, reason=reason,
                     fallback_model=intent.resolved_model if intent.fallback_model else None,
                     cost_estimate=cost, budget_status=intent.budget_status,
                     warnings=intent.warnings, drops=intent.drops,
                     restricted=intent.restricted,
                     standing=intent.candidates)  # the intent ends here: no copy

    def _preferred_loading(self, intent: RoutingIntent, ready: list[Backend]) -> Backend | None:
        """A loading backend of higher priority than every ready one, worth waiting for:
        its model is nearly loaded (known ETA within the queue's max wait)."""
        if not self.queue.enabled:
            return None
        top = max(b.priority for b in ready)
        limit_ms = self.queue.max_wait_seconds * 1000
        loading = [b for b in intent.candidates if b.health.state is Health.LOADING
                   and b.health.eta and b.priority > top and _wait_ms(b) <= limit_ms]
        return max(loading, key=lambda b: b.priority, default=None)

    def _queue(self, intent: RoutingIntent) -> Queue:
        waiting = [RejectionReason(b.name, STAGE, _busy(b), "retry shortly: capacity frees up")
                   for b in intent.candidates]
        return Queue(reason="; ".join(f"{r.backend} {r.reason}" for r in waiting),
                     estimated_wait_ms=min(_wait_ms(b) for b in intent.candidates),
                     rejection_reasons=[*intent.rejection_reasons, *waiting])


def _with_affinity(key: AffinityKey, affinity: Affinity, model: str, ready: list[Backend],
                   chosen: Backend, why: str) -> tuple[Backend, str]:
    """Among the local servers as good as the one the score chose (same priority, the
    model warm where any has it warm), the conversation's own, unless too busy."""
    now = time.monotonic()
    pool = [b for b in ready if b.priority == chosen.priority and not b.is_cloud]
    pool = [b for b in pool if warmth(b, model, now) == 1.0] or pool
    if len(pool) < 2:
        return chosen, why
    return affinity.pick(key, pool)


def _down(backend: Backend) -> tuple[str, str]:
    return f"unhealthy: {backend.health.reason}", bring_back(backend)


def bring_back(backend: Backend) -> str:
    """What an operator does to bring a backend that is down back into rotation."""
    if backend.is_cloud and not backend.api_key:
        return (f"set {backend.config.api_key_env} in the gateway's environment to the API "
                f"key for {backend.name}, then restart the gateway")
    server = "Ollama" if backend.config.type == "ollama" else f"the server of {backend.name}"
    return (f"start {server} at {backend.shown_url} or set backends in nexus.toml (see "
            "`nexus config init`); it returns after passing its health checks")


def _busy(backend: Backend) -> str:
    if backend.health.state is Health.LOADING:
        eta = backend.health.eta
        ready = f", ready in ~{max(0, eta - time.time()):.0f}s" if eta else ""
        return f"loading the model{ready}"
    return f"at capacity {backend.fleet_in_flight}/{backend.max_concurrent}"


def _wait_ms(backend: Backend) -> int:
    eta = backend.health.eta
    if backend.health.state is Health.LOADING and eta:
        return max(0, int((eta - time.time()) * 1000))
    return int(backend.latency_ema_ms or DEFAULT_WAIT_MS)
