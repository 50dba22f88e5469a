"""The pipeline's vocabulary: what a request needs, why a backend was dropped, the decision."""

from __future__ import annotations

import enum
from typing import Any, Literal

import msgspec

from nexus.backends.backend import Backend

Endpoint = Literal["chat", "completions", "embeddings"]


class BudgetStatus(enum.Enum):
    NORMAL = "normal"
    SOFT_LIMIT = "soft_limit"
    HARD_LIMIT = "hard_limit"

    __hash__ = object.__hash__  # singletons: identity hash, in C, not Enum's Python one


class RequestFlags(msgspec.Struct, frozen=True, kw_only=True):
    """What the client asked for in X-Nexus-* headers; it can tighten, never loosen."""

    restricted: bool = False
    strict: bool = False
    flexible: bool = False


NO_FLAGS = RequestFlags()


class Requirements(msgspec.Struct, kw_only=True):
    vision: bool = False
    tools: bool = False
    json_mode: bool = False
    json_format: str | None = None  # response_format.type: json_object or json_schema
    input_tokens: int = 0
    max_output_tokens: int | None = None

    @property
    def context_needed(self) -> int:
        return self.input_tokens + (self.max_output_tokens or 0)


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
