"""The shared-state interface: what routing reads without I/O, and where spend goes.

Reads (`budget_view`) come from a snapshot held in memory, so the routing path
never waits on the network. Writes (`record_spend`) never block the request and
never lose money: an implementation may batch them, but each request id counts once.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from nexus.budget import BudgetView
from nexus.supervise import Supervisor
from nexus.tenants.model import KeyRecord, TeamRecord, TenantSpend
from nexus.tenants.rates import RateCheck, RateSubject, RateVerdict


class SpendRecord(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str     # the idempotency key: a second record with it is ignored
    month: str          # "YYYY-MM", UTC, when the request was routed
    backend: str
    model: str
    cost_micro_usd: int
    estimated: bool = False  # True when the backend reported no usage
    reserved: bool = False   # a strict-budget reservation is held under request_id: release it
    key: str = ""            # the tenant key that sent it ("" for none), for attribution
    team: str = ""           # and its team
    day: str = ""            # "YYYY-MM-DD", UTC, of the same moment as month ("": none)


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    request_id: str
    month: str
    backend: str
    model: str
    estimate_micro_usd: int
    limit_micro_usd: int | None  # the fleet's monthly limit; None: only tenant budgets
    ttl_seconds: float  # after this the leader counts the estimate as spent
    key: str = ""                  # the tenant's key, and its budget (None: no budget)
    key_limit_micro_usd: int | None = None
    team: str = ""
    team_limit_micro_usd: int | None = None


HELD, OVER_FLEET_BUDGET, OVER_KEY_BUDGET, OVER_TEAM_BUDGET = "", "fleet", "key", "team"


class TenantRecords(msgspec.Struct, frozen=True):
    """The keys and teams made through the admin API, as last read (the config's own
    are not in the store)."""

    version: int = 0
    keys: dict[str, KeyRecord] = msgspec.field(default_factory=dict)
    teams: dict[str, TeamRecord] = msgspec.field(default_factory=dict)


class SpendBreakdown(msgspec.Struct, kw_only=True):
    month: str
    total_micro_usd: int = 0
    reserved_micro_usd: int = 0
    by_backend: dict[str, int] = msgspec.field(default_factory=dict)
    by_model: dict[str, int] = msgspec.field(default_factory=dict)
    by_key: dict[str, int] = msgspec.field(default_factory=dict)
    by_team: dict[str, int] = msgspec.field(default_factory=dict)
    by_day: dict[str, int] = msgspec.field(default_factory=dict)  # "YYYY-MM-DD" -> micro-USD


class StoreStatus(msgspec.Struct, kw_only=True):
    kind: str                              # "memory" or "redis"
    connected: bool
    snapshot_age_seconds: float | None     # None before the first snapshot
    pending_spend_records: int = 0         # costs not yet confirmed by the store
    last_error: str = ""
    circuit_open: bool = False             # requests no longer wait on the store


class Store(Protocol):
    name: str

    def budget_view(self) -> BudgetView:
        """The month's spend as last seen; never does I/O."""

    def record_spend(self, record: SpendRecord) -> None:
        """Count one request's cost; returns at once, never loses it, never counts it twice."""

    async def commit_spend(self, record: SpendRecord) -> None:
        """Count one request's cost and return once the shared store has it, or, while
        the store cannot be reached, once it waits in this replica's buffer."""

    async def reserve(self, reservation: Reservation) -> bool:
        """Strict budgets: hold the estimate unless spent + reserved + estimate > limit.
        Raises StoreError when the shared store cannot answer."""

    async def hold(self, reservation: Reservation) -> str:
        """`reserve`, saying which budget refused: HELD ("") or OVER_*_BUDGET. The
        fleet's, the key's and the team's are checked and held together, or none."""

    # -- tenants -------------------------------------------------------------------------
    def tenant_records(self) -> TenantRecords:
        """The admin API's keys and teams as last seen; never does I/O."""

    async def save_key(self, record: KeyRecord) -> None: ...

    async def save_team(self, record: TeamRecord) -> None: ...

    async def delete_key(self, name: str) -> bool: ...

    async def delete_team(self, name: str) -> bool: ...

    def tenant_spend(self) -> TenantSpend:
        """The month's spend by key and team as last seen; never does I/O."""

    async def rate_check(self, check: RateCheck) -> RateVerdict:
        """Admit or refuse a request under its subjects' rate limits, fleet-wide.
        Raises StoreError when the shared store cannot answer."""

    def settle_rate(self, check: RateCheck, actual_tokens: int) -> None:
        """Replace an admitted request's token estimate with its usage (queued)."""

    async def rate_usage(self, subject: RateSubject) -> tuple[int, int]:
        """(requests, tokens) of a rate subject ("key:NAME") in the last minute."""

    async def release(self, request_id: str, month: str) -> None:
        """Let go of a reservation whose request was not served (no cost)."""

    async def breakdown(self, month: str) -> SpendBreakdown:
        """The month's spend per backend and per model, for `nexus budget` and /v1/stats."""

    def status(self) -> StoreStatus:
        """How fresh this replica's view of the fleet is, for /health and /metrics."""

    async def sync(self) -> None:
        """Write what is buffered and re-read the snapshot now (tests, CLI, shutdown)."""

    async def start(self, supervisor: Supervisor | None = None) -> None:
        """Start the store's background loops (under `supervisor` when given)."""

    async def close(self) -> None:
        """Flush what is buffered, then let go of connections."""
