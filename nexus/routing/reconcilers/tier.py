"""TierReconciler: keep backends at or above the policy's min_tier, strictly by default."""

from __future__ import annotations

from nexus.backends.backend import Backend
from nexus.routing.intent import RoutingIntent

STAGE = "TierReconciler"
STRICT_HINT = "send X-Nexus-Flexible to accept a lower tier"


class TierReconciler:
    name = STAGE

    def reconcile(self, intent: RoutingIntent) -> None:
        intent.min_tier = tier = intent.policy.min_tier
        if tier is None:
            return
        meeting = [b for b in intent.candidates if b.tier >= tier]
        below = [b for b in intent.candidates if b.tier < tier]
        if not self._flexible(intent):
            intent.split(STAGE, meeting, below, lambda b: _below(b, tier, STRICT_HINT))
        elif any(not b.health.down for b in meeting):
            intent.split(STAGE, meeting, below,
                         lambda b: _below(b, tier, "a backend meeting the tier is available"))
        elif intent.candidates:
            intent.warnings["X-Nexus-Tier-Warning"] = (
                f"no backend meets min_tier {tier}; a lower tier serves this request "
                "(X-Nexus-Flexible)")

    @staticmethod
    def _flexible(intent: RoutingIntent) -> bool:
        flags = intent.headers
        return flags.flexible and not flags.strict and intent.policy.fallback_allowed


def _below(backend: Backend, tier: int, hint: str) -> tuple[str, str]:
    return f"tier {backend.tier} is below the policy's min_tier {tier}", hint
