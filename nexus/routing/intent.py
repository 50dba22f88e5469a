"""`RoutingIntent`: the one object every stage reads and narrows."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from nexus.backends.backend import Backend
from nexus.budget.month import BudgetStatus
from nexus.core.types import NO_FLAGS, Endpoint, RequestFlags, Requirements
from nexus.routing.affinity import AffinityKey
from nexus.routing.policies import NO_POLICY, EffectivePolicy
from nexus.routing.types import CostEstimate, RejectionReason, ScoreAdjustment
from nexus.tenants.model import Tenant

Verdict = tuple[str, str] | None  # (reason, suggestion) against a backend, or None
Explain = Callable[[Backend], tuple[str, str]]
# A dropped backend with what says why: the words are only written when someone reads
# them (a Reject, explain), so a stage that drops half of a large fleet stays cheap.
Drop = tuple[Backend, str, Explain | tuple[str, str]]


class RoutingIntent(msgspec.Struct, kw_only=True):
    request_id: str
    requested_model: str
    resolved_model: str
    endpoint: Endpoint = "chat"
    payload: dict[str, Any] | None = None
    fallback_model: str | None = None     # set when a fallback chain is being tried
    headers: RequestFlags = NO_FLAGS
    attempt: int = 0                      # 0 for the first try, n for the n-th retry
    policy: EffectivePolicy = NO_POLICY
    requirements: Requirements = msgspec.field(default_factory=Requirements)
    requirements_known: bool = False      # read by the caller already: do not read again
    restricted: bool = False              # privacy constraint: restricted zones only
    min_tier: int | None = None
    budget_status: BudgetStatus = BudgetStatus.NORMAL
    cost_estimate: CostEstimate = msgspec.field(default_factory=CostEstimate)
    costs: dict[str, int] = msgspec.field(default_factory=dict)  # paid backend -> micro-USD
    candidates: list[Backend] = msgspec.field(default_factory=list)
    drops: list[Drop] = msgspec.field(default_factory=list)
    adjustments: list[ScoreAdjustment] = msgspec.field(default_factory=list)
    warnings: dict[str, str] = msgspec.field(default_factory=dict)  # header -> text
    tried: frozenset[str] = frozenset()   # backends this request already failed on
    model_served: bool = False            # some backend in the fleet lists the model
    tenant: Tenant | None = None          # the key (and team) that sent the request
    affinity: AffinityKey | None = None   # the conversation's key: which server keeps it

    def narrow(self, stage: str, why_not: Callable[[Backend], Verdict]) -> None:
        """Keep the candidates `why_not` has nothing against; drop the rest with a reason.

        The only way a stage changes the candidate set: it can shrink, never grow.
        """
        kept: list[Backend] = []
        for backend in self.candidates:
            verdict = why_not(backend)
            if verdict is None:
                kept.append(backend)
            else:
                self.drops.append((backend, stage, verdict))
        self.candidates = kept

    def keep(self, stage: str, kept: list[Backend], why_not: Explain) -> None:
        """Like `narrow`, for a stage that has already filtered in one pass: `why_not` is
        asked only about the dropped backends, so the common case (nothing dropped) is free."""
        if len(kept) != len(self.candidates):
            still = set(kept)  # backends hash by identity
            self.split(stage, kept, [b for b in self.candidates if b not in still], why_not)

    def split(self, stage: str, kept: list[Backend], dropped: list[Backend],
              why_not: Explain) -> None:
        """`keep` for a stage that has both halves already (cheapest for large drops)."""
        if dropped:
            self.drops += [(backend, stage, why_not) for backend in dropped]
            self.candidates = kept

    @property
    def excluded(self) -> list[str]:
        """The backends dropped so far, in the order the stages dropped them."""
        return [backend.name for backend, _, _ in self.drops]

    @property
    def rejection_reasons(self) -> list[RejectionReason]:
        return reasons_of(self.drops)

    def factors(self) -> dict[str, float]:
        """Each adjusted backend's combined score factor; absent means 1."""
        result: dict[str, float] = {}
        for adjustment in self.adjustments:
            result[adjustment.backend] = result.get(adjustment.backend, 1.0) * adjustment.factor
        return result

    def adjust(self, backend: Backend, stage: str, factor: float, reason: str) -> None:
        self.adjustments.append(ScoreAdjustment(backend.name, stage, factor, reason))



def reasons_of(drops: list[Drop]) -> list[RejectionReason]:
    return [RejectionReason(backend.name, stage, *(why if isinstance(why, tuple)
                                                   else why(backend)))
            for backend, stage, why in drops]
