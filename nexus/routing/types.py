"""The pipeline's vocabulary: why a backend was dropped, and the decision."""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.backends.backend import Backend
from nexus.budget.month import BudgetStatus


class CostEstimate(msgspec.Struct, frozen=True, kw_only=True):
    input_tokens: int = 0
    output_tokens: int = 0
    cost_micro_usd: int = 0
    token_tier: str = "small"


class RejectionReason(msgspec.Struct, frozen=True):
    backend: str
    stage: str
    reason: str
    suggestion: str


class ScoreAdjustment(msgspec.Struct, frozen=True):
    backend: str
    stage: str
    factor: float
    reason: str


class Route(msgspec.Struct, kw_only=True):
    backend: Backend
    model: str                         # the model name the backend is asked for
    requested_model: str
    reason: str
    fallback_model: str | None = None  # set when a fallback chain chose the model
    cost_estimate: CostEstimate = msgspec.field(default_factory=CostEstimate)
    budget_status: BudgetStatus = BudgetStatus.NORMAL
    warnings: dict[str, str] = msgspec.field(default_factory=dict)  # header -> text
    restricted: bool = False  # routed under restricted privacy (no content in traces)
    # The run that chose it, by reference (no copy): the backends it dropped, as
    # (backend, stage, why), and those still standing, for the dashboard's feed.
    drops: list[Any] = msgspec.field(default_factory=list)
    standing: list[Any] = msgspec.field(default_factory=list)


class Queue(msgspec.Struct, kw_only=True):
    """Nothing can take the request now: wait for capacity, then `fallback` if any."""

    reason: str
    estimated_wait_ms: int
    fallback: Route | None = None
    rejection_reasons: list[RejectionReason] = msgspec.field(default_factory=list)


class Reject(msgspec.Struct, kw_only=True):
    rejection_reasons: list[RejectionReason]
    model_known: bool = True


RoutingDecision = Route | Queue | Reject
