"""The month's budget as `nexus budget` and `GET /v1/budget` report it."""

from __future__ import annotations

from typing import Any

from nexus.budget.month import BudgetView, status_of
from nexus.budget.prices import micro_usd, usd
from nexus.budget.records import SpendBreakdown
from nexus.config.schema import BudgetConfig


def budget_report(spend: SpendBreakdown, budget: BudgetConfig | None, leader: str | None,
                  reconciled: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "month": spend.month, "spent_micro_usd": spend.total_micro_usd,
        "spent_usd": usd(spend.total_micro_usd),
        "reserved_micro_usd": spend.reserved_micro_usd,
        "by_backend": dict(sorted(spend.by_backend.items())),
        "by_model": dict(sorted(spend.by_model.items())),
        "by_key": dict(sorted(spend.by_key.items())),
        "by_team": dict(sorted(spend.by_team.items())),
        "leader": leader, "reconciled": reconciled or None}
    if budget is not None:
        view = BudgetView(month=spend.month, spent_micro_usd=spend.total_micro_usd,
                          reserved_micro_usd=spend.reserved_micro_usd)
        data.update(limit_micro_usd=micro_usd(budget.monthly_limit_usd),
                    status=status_of(view, budget).value, enforcement=budget.enforcement)
    return data


def print_budget(data: dict[str, Any], by: str | None = None) -> None:
    limit = data.get("limit_micro_usd")
    of = f" of ${usd(limit)} ({data['status']}, {data['enforcement']})" if limit else ""
    print(f"{data['month']}: spent ${data['spent_usd']}{of}; "
          f"reserved ${usd(data['reserved_micro_usd'])}; leader {data['leader'] or 'none'}")
    for kind in ("backend", "model", "key", "team"):
        part = data.get(f"by_{kind}") or {}
        title = f"by {kind}"
        if part and by in (None, kind):
            print(f"  {title}:")
            for name, amount in part.items():
                print(f"    {name:<24} ${usd(amount)}")
