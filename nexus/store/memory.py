"""The in-process store: one replica, no Redis, nothing survives a restart."""

from __future__ import annotations

import time
from collections import Counter, OrderedDict
from collections.abc import Callable

import msgspec

from nexus.budget.month import BudgetView, month_of
from nexus.budget.records import (
    HELD,
    OVER_FLEET_BUDGET,
    OVER_KEY_BUDGET,
    OVER_TEAM_BUDGET,
    Reservation,
    SpendBreakdown,
    SpendRecord,
)
from nexus.core.tasks import Supervisor
from nexus.store.base import StoreStatus, TenantRecords
from nexus.tenants.model import KeyRecord, TeamRecord, TenantSpend
from nexus.tenants.rates import LocalLimiter, RateCheck, RateSubject, RateVerdict

KEPT_OPERATIONS = 1_000  # lifecycle operations remembered, the newest
STORED_RESPONSES = 10_000  # Responses API responses kept in memory, newest kept
DEMAND_HOURS = 31 * 24  # request counts per model per hour kept this long
SEEN_IDS = 100_000  # request ids remembered for idempotency; retries come within seconds
Ledger = dict[str, Counter[str]]  # month -> name -> micro-USD


class MemoryStore:
    name = "memory"

    def __init__(self, month: Callable[[], str] = month_of) -> None:
        self._month = month
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()  # (month, request id)
        self._total: Counter[str] = Counter()
        self._spent: dict[str, Ledger] = {k: {} for k in ("backend", "model", "key", "team",
                                                          "day")}
        self._held: dict[str, Ledger] = {"key": {}, "team": {}}
        self._reservations: dict[str, Reservation] = {}
        self._reserved: Counter[str] = Counter()          # month -> micro-USD held
        self._view: BudgetView | None = None              # cached until the next change
        self._tenants = TenantRecords()
        self.limiter = LocalLimiter()
        self._claims: dict[str, tuple[str, float]] = {}  # backend -> (token, expiry)
        self._operations: dict[str, tuple[float, bytes]] = {}  # id -> (started, record)
        # Responses API responses: id -> (expiry on the monotonic clock, record)
        self._responses: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._backends: dict[str, bytes] = {}  # added at run time: name -> record
        self._demand: dict[int, Counter[str]] = {}  # unix hour -> model -> requests

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
        for kind, name in (("backend", record.backend), ("model", record.model),
                           ("key", record.key), ("team", record.team), ("day", record.day)):
            if name:
                self._spent[kind].setdefault(record.month, Counter())[name] += \
                    record.cost_micro_usd

    async def commit_spend(self, record: SpendRecord) -> None:
        self.record_spend(record)

    async def reserve(self, reservation: Reservation) -> bool:
        return await self.hold(reservation) == HELD

    async def hold(self, reservation: Reservation) -> str:
        if reservation.request_id in self._reservations:
            return HELD
        month, estimate = reservation.month, reservation.estimate_micro_usd
        if reservation.limit_micro_usd is not None and self._total[month] + \
                self._reserved[month] + estimate > reservation.limit_micro_usd:
            return OVER_FLEET_BUDGET
        for kind, name, limit, refusal in (
                ("key", reservation.key, reservation.key_limit_micro_usd, OVER_KEY_BUDGET),
                ("team", reservation.team, reservation.team_limit_micro_usd, OVER_TEAM_BUDGET)):
            if name and limit is not None and \
                    self._used(kind, month, name) + estimate > limit:
                return refusal
        self._reservations[reservation.request_id] = reservation
        self._reserved[month] += estimate
        self._hold_tenants(reservation, estimate)
        self._view = None
        return HELD

    def _used(self, kind: str, month: str, name: str) -> int:
        return self._spent[kind].get(month, Counter())[name] + \
            self._held[kind].get(month, Counter())[name]

    def _hold_tenants(self, reservation: Reservation, amount: int) -> None:
        for kind, name in (("key", reservation.key), ("team", reservation.team)):
            if name:
                self._held[kind].setdefault(reservation.month, Counter())[name] += amount

    async def release(self, request_id: str, month: str) -> None:
        self._let_go(request_id)

    def _let_go(self, request_id: str) -> None:
        held = self._reservations.pop(request_id, None)
        if held is not None:
            self._reserved[held.month] -= held.estimate_micro_usd
            self._hold_tenants(held, -held.estimate_micro_usd)
            self._view = None

    async def breakdown(self, month: str) -> SpendBreakdown:
        spent = {kind: dict(ledger.get(month, {})) for kind, ledger in self._spent.items()}
        return SpendBreakdown(month=month, total_micro_usd=self._total[month],
                              reserved_micro_usd=self._reserved[month],
                              by_backend=spent["backend"], by_model=spent["model"],
                              by_key=spent["key"], by_team=spent["team"],
                              by_day=dict(sorted(spent["day"].items())))

    # -- tenants -------------------------------------------------------------------------
    def tenant_records(self) -> TenantRecords:
        return self._tenants

    async def save_key(self, record: KeyRecord) -> None:
        self._change(keys={**self._tenants.keys, record.name: record})

    async def save_team(self, record: TeamRecord) -> None:
        self._change(teams={**self._tenants.teams, record.name: record})

    async def delete_key(self, name: str) -> bool:
        found = name in self._tenants.keys
        self._change(keys={k: v for k, v in self._tenants.keys.items() if k != name})
        return found

    async def delete_team(self, name: str) -> bool:
        found = name in self._tenants.teams
        self._change(teams={k: v for k, v in self._tenants.teams.items() if k != name})
        return found

    def _change(self, **changes: object) -> None:
        self._tenants = msgspec.structs.replace(self._tenants, version=self._tenants.version + 1,
                                                **changes)

    def tenant_spend(self) -> TenantSpend:
        month = self._month()
        return TenantSpend(month=month,
                           spent_by_key=dict(self._spent["key"].get(month, {})),
                           spent_by_team=dict(self._spent["team"].get(month, {})),
                           reserved_by_key=dict(self._held["key"].get(month, {})),
                           reserved_by_team=dict(self._held["team"].get(month, {})))

    async def rate_check(self, check: RateCheck) -> RateVerdict:
        return self.limiter.check(check)

    def settle_rate(self, check: RateCheck, actual_tokens: int) -> None:
        self.limiter.settle(check, actual_tokens)

    async def rate_usage(self, subject: RateSubject) -> tuple[int, int]:
        return self.limiter.usage(subject.name)

    async def save_response(self, response_id: str, record: bytes, ttl_seconds: int) -> None:
        self._responses[response_id] = (time.monotonic() + ttl_seconds, record)
        self._responses.move_to_end(response_id)
        while len(self._responses) > STORED_RESPONSES:  # the oldest go first
            self._responses.popitem(last=False)

    async def load_response(self, response_id: str) -> bytes | None:
        found = self._responses.get(response_id)
        if found is None:
            return None
        if found[0] <= time.monotonic():
            del self._responses[response_id]
            return None
        return found[1]

    async def delete_response(self, response_id: str) -> bool:
        return self._responses.pop(response_id, None) is not None

    async def claim_backend(self, backend: str, token: str, ttl_ms: int) -> str | None:
        held = self._claims.get(backend)
        if held is not None and held[1] > time.monotonic() and held[0] != token:
            return held[0]
        self._claims[backend] = (token, time.monotonic() + ttl_ms / 1000)
        return None

    async def renew_claim(self, backend: str, token: str, ttl_ms: int) -> bool:
        held = self._claims.get(backend)
        if held is None or held[0] != token or held[1] <= time.monotonic():
            return False
        self._claims[backend] = (token, time.monotonic() + ttl_ms / 1000)
        return True

    async def release_claim(self, backend: str, token: str) -> None:
        if self._claims.get(backend, ("",))[0] == token:
            del self._claims[backend]

    async def save_operation(self, operation_id: str, record: bytes, started: float) -> None:
        self._operations[operation_id] = (started, record)
        while len(self._operations) > KEPT_OPERATIONS:
            oldest = min(self._operations, key=lambda k: self._operations[k][0])
            del self._operations[oldest]

    async def load_operation(self, operation_id: str) -> bytes | None:
        found = self._operations.get(operation_id)
        return None if found is None else found[1]

    async def recent_operations(self, limit: int) -> list[bytes]:
        newest = sorted(self._operations.values(), key=lambda kept: -kept[0])
        return [record for _, record in newest[:limit]]

    async def add_backend(self, name: str, record: bytes) -> bool:
        return self._backends.setdefault(name, record) is record

    async def delete_backend(self, name: str) -> bool:
        return self._backends.pop(name, None) is not None

    async def runtime_backends(self) -> dict[str, bytes]:
        return dict(self._backends)

    def count_request(self, model: str, hour: int) -> None:
        counts = self._demand.get(hour)
        if counts is None:  # a new hour: forget the ones past the history kept
            for old in [h for h in self._demand if h < hour - DEMAND_HOURS]:
                del self._demand[old]
            counts = self._demand[hour] = Counter()
        counts[model] += 1

    async def demand(self, first_hour: int, last_hour: int) -> dict[int, dict[str, int]]:
        return {hour: dict(counts) for hour, counts in self._demand.items()
                if first_hour <= hour <= last_hour}

    def status(self) -> StoreStatus:
        return StoreStatus(kind=self.name, connected=True, snapshot_age_seconds=0.0)

    async def sync(self) -> None:
        return None

    async def start(self, supervisor: Supervisor | None = None) -> None:
        return None

    async def close(self) -> None:
        return None
