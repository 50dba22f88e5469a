"""Dry-run a request through the pipeline and say what every stage did, without sending it."""

from __future__ import annotations

from typing import Any

from nexus.budget.prices import usd
from nexus.core.errors import NexusError
from nexus.routing.rejection import grouped
from nexus.routing.request import RoutingRequest
from nexus.routing.router import Router, Trace
from nexus.routing.types import Queue, Reject, Route, RoutingDecision


def explain(router: Router, request: RoutingRequest) -> dict[str, Any]:
    trace = Trace()
    decision = router.decide(request, trace)
    return {
        "request_id": request.request_id,
        "model": request.model,
        "decision": _decision(decision),
        "outcome": _outcome(router, request, decision),
        "stages": [{"model": e.model, "stage": e.stage, "before": e.before, "after": e.after,
                    "rejected": [{"backend": r.backend, "reason": r.reason,
                                  "suggestion": r.suggestion} for r in e.reasons],
                    "adjustments": [{"backend": a.backend, "factor": a.factor,
                                     "reason": a.reason} for a in e.adjustments]}
                   for e in trace.effects],
        "scores": [{"model": s.model, "backend": s.backend, "score": round(s.parts.score, 6),
                    "priority": round(s.parts.priority, 4),
                    "free_capacity": round(s.parts.free_capacity, 4),
                    "speed": round(s.parts.speed, 4), "quality": round(s.parts.quality, 4),
                    "cache": round(s.parts.cache, 4), "warmth": round(s.parts.warmth, 4),
                    "adjustment": s.parts.adjustment,
                    "cold": s.cold}
                   for s in trace.scores],
    }


def _decision(decision: RoutingDecision) -> dict[str, Any]:
    if isinstance(decision, Route):
        return _route(decision)
    if isinstance(decision, Queue):
        return {"type": "queue", "reason": decision.reason,
                "estimated_wait_ms": decision.estimated_wait_ms,
                "fallback": None if decision.fallback is None else _route(decision.fallback)}
    assert isinstance(decision, Reject)
    return {"type": "reject", "model_known": decision.model_known,
            "rejection_reasons": grouped(decision.rejection_reasons)}


def _route(route: Route) -> dict[str, Any]:
    return {"type": "route", "backend": route.backend.name, "model": route.model,
            "reason": route.reason, "fallback_model": route.fallback_model,
            "privacy_zone": route.backend.config.zone,
            "cost_estimated_usd": usd(route.cost_estimate.cost_micro_usd),
            "input_tokens": route.cost_estimate.input_tokens,
            "output_tokens": route.cost_estimate.output_tokens,
            "token_tier": route.cost_estimate.token_tier,
            "budget_status": route.budget_status.value, "warnings": route.warnings}


def _outcome(router: Router, request: RoutingRequest, decision: RoutingDecision) -> str:
    """What a client would get if it did not wait: the status line, in words."""
    try:
        route = router.outcome(request, decision)
    except NexusError as exc:
        return f"HTTP {exc.status}: {exc.message}"
    return f"routed to {route.backend.name} ({route.model})"
