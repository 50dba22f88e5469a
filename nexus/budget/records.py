"""What the ledger holds: a request's cost, a strict budget's hold, a month's breakdown."""

from __future__ import annotations

import msgspec


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


class SpendBreakdown(msgspec.Struct, kw_only=True):
    month: str
    total_micro_usd: int = 0
    reserved_micro_usd: int = 0
    by_backend: dict[str, int] = msgspec.field(default_factory=dict)
    by_model: dict[str, int] = msgspec.field(default_factory=dict)
    by_key: dict[str, int] = msgspec.field(default_factory=dict)
    by_team: dict[str, int] = msgspec.field(default_factory=dict)
    by_day: dict[str, int] = msgspec.field(default_factory=dict)  # "YYYY-MM-DD" -> micro-USD
