"""This replica's recent routing decisions and refusals, for the dashboard.

A ring buffer of the last decisions and a per-minute count of refusals by stage and
reason over the last hour. Recording costs a few attribute reads per request and asks
Redis nothing: the fleet publishes the buffer with its periodic figures, and a
dashboard merges every replica's on read. A decision's words (its stage-by-stage
effect) are written once, the first time anyone reads it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import Any

from nexus.core.errors import (
    ClientInputError,
    ContextLengthExceeded,
    Forbidden,
    InsufficientQuota,
    ModelNotFound,
    NexusError,
    NoViableBackend,
    RateLimitExceeded,
)
from nexus.proxy.call import Call
from nexus.routing.intent import reasons_of
from nexus.routing.router import Router
from nexus.routing.types import Route

RECENT = 50           # decisions kept (and published) per replica
HOUR_MINUTES = 60
Json = dict[str, Any]
# Refusals that happen before or beside the pipeline, by the stage that refused.
# Errors met after a route was chosen that are not the backend's answer: a budget's
# hold, a strict limit, the client's own input.
_NOT_THE_BACKENDS = (InsufficientQuota, NoViableBackend, ClientInputError)
_REFUSING_STAGE: tuple[tuple[type[NexusError], str], ...] = (
    (RateLimitExceeded, "Admission"), (Forbidden, "Admission"),
    (InsufficientQuota, "BudgetReconciler"), (ContextLengthExceeded, "RequestAnalyzer"),
    (ModelNotFound, "RequestAnalyzer"))


class Decision:
    """One request's outcome; its JSON is built on first read and kept. It keeps only
    the call's small facts, never the call: fifty request bodies must not stay alive."""

    __slots__ = ("_json", "api", "cost_micro_usd", "error", "latency_ms", "model",
                 "request_id", "route", "status", "stream", "tenant", "when")

    def __init__(self, call: Call, route: Route | None, status: int, error: str,
                 latency_ms: float, cost_micro_usd: int) -> None:
        self.when = time.time()
        self.request_id, self.model, self.stream = call.request_id, call.model, call.stream
        self.api = "messages" if call.dialect is not None else call.endpoint
        self.tenant = call.tenant
        self.route, self.status, self.error = route, status, error
        self.latency_ms, self.cost_micro_usd = latency_ms, cost_micro_usd
        self._json: Json | None = None

    def json(self, stages: list[str]) -> Json:
        if self._json is None:
            self._json = self._build(stages)
        return self._json

    def _build(self, stages: list[str]) -> Json:
        route, tenant = self.route, self.tenant
        out: Json = {
            "at": round(self.when, 3), "request_id": self.request_id, "api": self.api,
            "key": tenant.key.name if tenant is not None else None,
            "team": tenant.team.name if tenant is not None and tenant.team else None,
            "model": self.model, "status": self.status, "stream": self.stream,
            "latency_ms": round(self.latency_ms, 1), "cost_micro_usd": self.cost_micro_usd,
            "error": self.error or None,
        }
        if route is not None:
            out |= {"resolved_model": route.model, "backend": route.backend.name,
                    "reason": route.reason, "zone": route.backend.config.zone,
                    "stages": stage_effects(route, stages)}
        return out


def stage_effects(route: Route, stages: list[str]) -> list[Json]:
    """What each stage did on the run that chose the route, as explain shows it: the
    candidates before and after, and each one it dropped with the reason."""
    reasons = reasons_of(route.drops)
    standing = [b.name for b in route.standing]
    remaining = list(dict.fromkeys([r.backend for r in reasons] + standing))
    effects = []
    for stage in stages:
        rejected = [{"backend": r.backend, "reason": r.reason, "suggestion": r.suggestion}
                    for r in reasons if r.stage == stage]
        gone = {r["backend"] for r in rejected}
        after = [name for name in remaining if name not in gone]
        effects.append({"stage": stage, "before": remaining, "after": after,
                        "rejected": rejected})
        remaining = after
    if effects:
        effects[-1]["chosen"] = route.backend.name
    return effects


class Feed:
    def __init__(self, stages: list[str], clock: Any = time.time) -> None:
        self.stages = stages
        self.recent: deque[Decision] = deque(maxlen=RECENT)
        self._clock = clock
        self._refusals: dict[int, Counter[tuple[str, str]]] = {}  # minute -> counts

    def record(self, call: Call, route: Route | None, status: int,
               error: NexusError | None, latency_ms: float, cost_micro_usd: int) -> None:
        self.recent.append(Decision(call, route, status, error.message if error else "",
                                    latency_ms, cost_micro_usd))
        if error is not None:
            self.refused(error, route)

    def refused(self, error: NexusError, route: Route | None = None) -> None:
        """Count a refused request once under each (stage, reason) that refused it."""
        minute = int(self._clock() // 60)
        counts = self._refusals.get(minute)
        if counts is None:
            counts = self._refusals[minute] = Counter()
            for old in [m for m in self._refusals if m <= minute - HOUR_MINUTES]:
                del self._refusals[old]
        for stage_and_reason in set(refusal_reasons(error, route)):
            counts[stage_and_reason] += 1

    def decisions(self) -> list[Json]:
        return [d.json(self.stages) for d in reversed(self.recent)]

    def refusals(self) -> list[Json]:
        """The last hour's refusals, grouped by stage and reason, most first."""
        since = int(self._clock() // 60) - HOUR_MINUTES
        total: Counter[tuple[str, str]] = Counter()
        for minute, counts in self._refusals.items():
            if minute > since:
                total.update(counts)
        return [{"stage": stage, "reason": reason, "count": count}
                for (stage, reason), count in total.most_common()]


def stage_names(router: Router) -> list[str]:
    return [stage.name for stage in router.pipeline.stages]


def refusal_reasons(error: NexusError, route: Route | None = None) -> list[tuple[str, str]]:
    groups = error.extra.get("rejection_reasons")
    if isinstance(groups, list) and groups:
        return [(g["stage"], r["reason"]) for g in groups for r in g["reasons"]]
    if route is not None and not isinstance(error, _NOT_THE_BACKENDS):
        return [("Upstream", f"{route.backend.name}: {error.message}")]  # its own answer
    for kind, stage in _REFUSING_STAGE:
        if isinstance(error, kind):
            return [(stage, error.message)]
    return [("Upstream" if error.status >= 500 else "Request", error.message)]


def merge_refusals(lists: list[list[Json]]) -> list[Json]:
    total: Counter[tuple[str, str]] = Counter()
    for items in lists:
        for item in items:
            total[(item["stage"], item["reason"])] += int(item["count"])
    return [{"stage": stage, "reason": reason, "count": count}
            for (stage, reason), count in total.most_common()]
