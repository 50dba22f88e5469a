"""The in-process store: one replica, no Redis, nothing survives a restart."""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Callable

from nexus.budget import BudgetView, month_of
from nexus.store.base import Reservation, SpendBreakdown, SpendRecord, StoreStatus
from nexus.supervise import Supervisor

SEEN_IDS = 100_000  # request ids remembered for idempotency; retries come within seconds


class MemoryStore:
    name = "memory"

    def __init__(self, month: Callable[[], str] = month_of) -> None:
        self._month = month
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()  # (month, request id)
        self._total: Counter[str] = Counter()
        self._by_backend: dict[str, Counter[str]] = {}
        self._by_model: dict[str, Counter[str]] = {}
        self._reservations: dict[str, Reservation] = {}
        self._reserved: Counter[str] = Counter()          # month -> micro-USD held
        self._view: BudgetView | None = None              # cached until the next change

    def budget_view(self) -> BudgetView:
        month = self._month()
        view = self._view
        if view is None or view.month != month:  # rebuilt only after a change
            view = self._view = BudgetView(month=month, spent_micro_usd=self._total[month],
                                           reserved_micro_usd=self._reserved[month])
        return view

    def record_spend(self, record: SpendRecord) -> None:
        self._let_go(record.request_id)
        key = (record.month, record.request_id)
        if key in self._seen or record.cost_micro_usd <= 0:
            return
        self._seen[key] = None
        self._view = None
        if len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        self._total[record.month] += record.cost_micro_usd
        self._by_backend.setdefault(record.month, Counter())[record.backend] += \
            record.cost_micro_usd
        self._by_model.setdefault(record.month, Counter())[record.model] += \
            record.cost_micro_usd

    async def commit_spend(self, record: SpendRecord) -> None:
        self.record_spend(record)

    async def reserve(self, reservation: Reservation) -> bool:
        if reservation.request_id in self._reservations:
            return True
        month = reservation.month
        if self._total[month] + self._reserved[month] + reservation.estimate_micro_usd > \
                reservation.limit_micro_usd:
            return False
        self._reservations[reservation.request_id] = reservation
        self._reserved[month] += reservation.estimate_micro_usd
        self._view = None
        return True

    async def release(self, request_id: str, month: str) -> None:
        self._let_go(request_id)

    def _let_go(self, request_id: str) -> None:
        held = self._reservations.pop(request_id, None)
        if held is not None:
            self._reserved[held.month] -= held.estimate_micro_usd
            self._view = None

    async def breakdown(self, month: str) -> SpendBreakdown:
        return SpendBreakdown(month=month, total_micro_usd=self._total[month],
                              reserved_micro_usd=self._reserved[month],
                              by_backend=dict(self._by_backend.get(month, {})),
                              by_model=dict(self._by_model.get(month, {})))

    def status(self) -> StoreStatus:
        return StoreStatus(kind=self.name, connected=True, snapshot_age_seconds=0.0)

    async def sync(self) -> None:
        return None

    async def start(self, supervisor: Supervisor | None = None) -> None:
        return None

    async def close(self) -> None:
        return None
