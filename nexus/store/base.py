"""The shared-state interface: what routing reads without I/O, and where spend goes.

Reads (`budget_view`) come from a snapshot held in memory, so the routing path
never waits on the network. Writes (`record_spend`) never block the request and
never lose money: an implementation may batch them, but each request id counts once.
"""

from __future__ import annotations

from typing import Protocol

import msgspec

from nexus.budget.month import BudgetView
from nexus.budget.records import Reservation, SpendBreakdown, SpendRecord
from nexus.core.tasks import Supervisor
from nexus.tenants.model import KeyRecord, TeamRecord, TenantSpend
from nexus.tenants.rates import RateCheck, RateSubject, RateVerdict


class TenantRecords(msgspec.Struct, frozen=True):
    """The keys and teams made through the admin API, as last read (the config's own
    are not in the store)."""

    version: int = 0
    keys: dict[str, KeyRecord] = msgspec.field(default_factory=dict)
    teams: dict[str, TeamRecord] = msgspec.field(default_factory=dict)


class StoreStatus(msgspec.Struct, kw_only=True):
    kind: str                              # "memory" or "redis"
    connected: bool
    snapshot_age_seconds: float | None     # None before the first snapshot
    pending_spend_records: int = 0         # costs not yet confirmed by the store
    last_error: str = ""
    circuit_open: bool = False             # requests no longer wait on the store


class BudgetSource(Protocol):
    """What routing and the budget views read: the month's spend, from memory."""

    def budget_view(self) -> BudgetView:
        """The month's spend as last seen; never does I/O."""

    def tenant_spend(self) -> TenantSpend:
        """The month's spend by key and team as last seen; never does I/O."""

    async def breakdown(self, month: str) -> SpendBreakdown:
        """The month's spend per backend and per model, for `nexus budget` and /v1/stats."""


class SpendLedger(Protocol):
    """Where a served request's cost goes."""

    def record_spend(self, record: SpendRecord) -> None:
        """Count one request's cost; returns at once, never loses it, never counts it twice."""

    async def commit_spend(self, record: SpendRecord) -> None:
        """Count one request's cost and return once the shared store has it, or, while
        the store cannot be reached, once it waits in this replica's buffer."""

    def count_request(self, model: str, hour: int) -> None:
        """Count one served request of `model` in its hour (unix hours), for pre-warm
        recommendations; returns at once (batched with the figures)."""


class Reservations(Protocol):
    """Strict budgets: an estimate held before a paid request is sent."""

    async def reserve(self, reservation: Reservation) -> bool:
        """Hold the estimate unless spent + reserved + estimate > limit.
        Raises StoreError when the shared store cannot answer."""

    async def hold(self, reservation: Reservation) -> str:
        """`reserve`, saying which budget refused: HELD ("") or OVER_*_BUDGET. The
        fleet's, the key's and the team's are checked and held together, or none."""

    async def release(self, request_id: str, month: str) -> None:
        """Let go of a reservation whose request was not served (no cost)."""


class RateLimits(Protocol):
    """Tenant rate limits, exact across the fleet."""

    async def rate_check(self, check: RateCheck) -> RateVerdict:
        """Admit or refuse a request under its subjects' rate limits, fleet-wide.
        Raises StoreError when the shared store cannot answer."""

    def settle_rate(self, check: RateCheck, actual_tokens: int) -> None:
        """Replace an admitted request's token estimate with its usage (queued)."""

    async def rate_usage(self, subject: RateSubject) -> tuple[int, int]:
        """(requests, tokens) of a rate subject ("key:NAME") in the last minute."""


class TenantSource(Protocol):
    """The keys and teams made through the admin API."""

    def tenant_records(self) -> TenantRecords:
        """The admin API's keys and teams as last seen; never does I/O."""

    async def save_key(self, record: KeyRecord) -> None: ...

    async def save_team(self, record: TeamRecord) -> None: ...

    async def delete_key(self, name: str) -> bool: ...

    async def delete_team(self, name: str) -> bool: ...


class ResponseStore(Protocol):
    """Stored Responses API responses (`previous_response_id`), each kept for a TTL.
    Each record is opaque bytes to the store: who may read it is the caller's check."""

    async def save_response(self, response_id: str, record: bytes, ttl_seconds: int) -> None:
        """Keep one response. Raises StoreError when the shared store cannot answer."""

    async def load_response(self, response_id: str) -> bytes | None:
        """The record, or None when unknown or expired. Raises StoreError likewise."""

    async def delete_response(self, response_id: str) -> bool:
        """Forget one response; False when it was not there."""


class Placements(Protocol):
    """Model lifecycle operations: their records, and one claim per backend, fleet-wide,
    that lapses unless its holder renews it (a replica that dies lets go)."""

    async def claim_backend(self, backend: str, token: str, ttl_ms: int) -> str | None:
        """Take the backend for an operation: None when taken, else the holder's token."""

    async def renew_claim(self, backend: str, token: str, ttl_ms: int) -> bool:
        """Keep the claim; False when it lapsed or another holds it."""

    async def release_claim(self, backend: str, token: str) -> None: ...

    async def save_operation(self, operation_id: str, record: bytes, started: float) -> None:
        """Keep (or replace) one operation's record, listed by when it started."""

    async def load_operation(self, operation_id: str) -> bytes | None: ...

    async def recent_operations(self, limit: int) -> list[bytes]:
        """The newest operations' records, newest first."""


class Roster(Protocol):
    """Backends added at run time, for every replica (the config file's are not here)."""

    async def add_backend(self, name: str, record: bytes) -> bool:
        """Keep a backend's record; False when one by that name is there already."""

    async def delete_backend(self, name: str) -> bool: ...

    async def runtime_backends(self) -> dict[str, bytes]:
        """Every backend added at run time: name -> its record."""


class DemandHistory(Protocol):
    """Requests served per model per hour, fleet-wide (what `count_request` wrote)."""

    async def demand(self, first_hour: int, last_hour: int) -> dict[int, dict[str, int]]:
        """hour -> model -> requests, for the hours in [first_hour, last_hour]."""


class Store(BudgetSource, SpendLedger, Reservations, RateLimits, TenantSource, ResponseStore,
            Placements, Roster, DemandHistory, Protocol):
    """The whole store, as the replica that owns it sees it; each consumer takes only the
    part above that it uses."""

    name: str

    def status(self) -> StoreStatus:
        """How fresh this replica's view of the fleet is, for /health and /metrics."""

    async def sync(self) -> None:
        """Write what is buffered and re-read the snapshot now (tests, CLI, shutdown)."""

    async def start(self, supervisor: Supervisor | None = None) -> None:
        """Start the store's background loops (under `supervisor` when given)."""

    async def close(self) -> None:
        """Flush what is buffered, then let go of connections."""
