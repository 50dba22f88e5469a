"""The in-process store: exact integer sums, and each request id counted once."""

from __future__ import annotations

from nexus.budget.records import SpendRecord
from nexus.store.memory import MemoryStore


def spend(request_id: str, cost: int, backend: str = "cloud", model: str = "gpt-4o",
          month: str = "2026-11") -> SpendRecord:
    return SpendRecord(request_id=request_id, month=month, backend=backend, model=model,
                       cost_micro_usd=cost)


async def test_spend_adds_up_per_backend_and_model_and_counts_each_request_once() -> None:
    store = MemoryStore(month=lambda: "2026-11")
    store.record_spend(spend("r1", 1500))
    store.record_spend(spend("r1", 1500))  # a retried write
    store.record_spend(spend("r2", 7, backend="other", model="claude-haiku"))
    store.record_spend(spend("r3", 0))      # free: nothing to count
    assert store.budget_view().spent_micro_usd == 1507
    breakdown = await store.breakdown("2026-11")
    assert breakdown.by_backend == {"cloud": 1500, "other": 7}
    assert breakdown.by_model == {"gpt-4o": 1500, "claude-haiku": 7}


async def test_months_are_kept_apart() -> None:
    month = ["2026-11"]
    store = MemoryStore(month=lambda: month[0])
    store.record_spend(spend("a", 10))
    month[0] = "2026-12"
    store.record_spend(spend("b", 20, month="2026-12"))
    assert store.budget_view().spent_micro_usd == 20
    assert (await store.breakdown("2026-11")).total_micro_usd == 10
