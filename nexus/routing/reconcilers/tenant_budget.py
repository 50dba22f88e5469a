"""A tenant out of budget: its paid backends drop out, its free local ones still serve.

Read from the snapshot of the month's spend by key and team (no I/O); the strict
reservation before a paid request is what keeps the spend exact, this only spares a
request the attempt when the budget is already gone.
"""

from __future__ import annotations

from nexus.budget.prices import micro_usd, usd
from nexus.routing.intent import RoutingIntent
from nexus.tenants.model import TenantSpend, budgets_of


def drop_paid_when_out_of_budget(intent: RoutingIntent, spend: TenantSpend,
                                 stage: str) -> None:
    verdict = _exhausted(intent, spend)
    if verdict is not None:
        intent.keep(stage, [b for b in intent.candidates if b.free], lambda b: verdict)


def _exhausted(intent: RoutingIntent, spend: TenantSpend) -> tuple[str, str] | None:
    """Why the request's key or team may spend no more, if one of them may not."""
    if intent.tenant is None:
        return None
    for kind, name, budget_usd in budgets_of(intent.tenant):
        used, limit = spend.used(kind, name), micro_usd(budget_usd)
        if used >= limit:
            return (f"{kind} {name!r} is out of budget (${usd(used)} of ${usd(limit)} this "
                    "month)", f"a free local backend can still serve it; raise the {kind}'s "
                    "monthly_budget_usd, or wait for the next month")
    return None
