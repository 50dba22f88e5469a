"""TierReconciler: keep backends at or above the policy's min_tier, strictly by default."""

from __future__ import annotations

from nexus.backends.backend import Backend
from nexus.backends.health import Health
from nexus.pipeline.intent import RoutingIntent, Verdict

STAGE = "TierReconciler"


class TierReconciler:
    name = STAGE

    def reconcile(self, intent: RoutingIntent) -> None:
        intent.min_tier = intent.policy.min_tier
        tier = intent.min_tier
        if tier is None:
            return
        if not self._flexible(intent):
            intent.narrow(STAGE, lambda b: _below(b, tier, strict=True))
        elif any(b.tier >= tier and b.health.state is not Health.UNHEALTHY
                 for b in intent.candidates):
            intent.narrow(STAGE, lambda b: _below(b, tier, strict=False))
        elif intent.candidates:
            intent.warnings["X-Nexus-Tier-Warning"] = (
                f"no backend meets min_tier {tier}; a lower tier serves this request "
                "(X-Nexus-Flexible)")

    @staticmethod
    def _flexible(intent: RoutingIntent) -> bool:
        flags = intent.headers
        return flags.flexible and not flags.strict and intent.policy.fallback_allowed


def _below(backend: Backend, tier: int, *, strict: bool) -> Verdict:
    if backend.tier >= tier:
        return None
    hint = "send X-Nexus-Flexible to accept a lower tier" if strict \
        else "a backend meeting the tier is available"
    return f"tier {backend.tier} is below the policy's min_tier {tier}", hint
