"""Tenants: keys and the teams they belong to, with their limits and policies.

A key is a secret a client sends (`Authorization: Bearer ...` or `x-api-key`); only
its SHA-256 is ever stored. A team's budget and rate limits are shared by all its
keys, and a request must pass both its key's limits and its team's.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Literal

import msgspec

from nexus.tenants.rates import RateSubject

Privacy = Literal["unrestricted", "restricted"]
WhenStale = Literal["fail_open", "fail_closed"]
SECRET_PREFIX = "nx-"


class Limits(msgspec.Struct, frozen=True, kw_only=True):
    """What a key or a team may use. `when_stale`: what happens while the shared store
    cannot be asked (default: rate limits fail open to a local share, budgets closed)."""

    monthly_budget_usd: float | None = None
    rpm: int | None = None   # requests per minute, fleet-wide
    tpm: int | None = None   # tokens per minute (prompt + completion), fleet-wide
    when_stale: WhenStale | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)
    created_at: float = 0.0

    @property
    def rate_limited(self) -> bool:
        return bool(self.rpm or self.tpm)


class TeamRecord(Limits, frozen=True, kw_only=True):
    name: str


class KeyRecord(Limits, frozen=True, kw_only=True):
    name: str
    secret_sha256: str
    team: str | None = None
    models: list[str] = msgspec.field(default_factory=list)  # globs; empty: any model
    privacy: Privacy = "unrestricted"
    expires_at: float | None = None  # unix time
    source: str = "admin"            # "config", "environment" or "admin" (made by the API)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (now or time.time()) >= self.expires_at


class Tenant(msgspec.Struct, frozen=True):
    """Who sent a request: its key and, when the key has one, its team."""

    key: KeyRecord
    team: TeamRecord | None = None
    rate_subjects: tuple[RateSubject, ...] = ()  # its key's and team's rate limits

    @property
    def restricted(self) -> bool:
        return self.key.privacy == "restricted"

    @property
    def rate_limited(self) -> bool:
        return bool(self.rate_subjects)

    @property
    def budgeted(self) -> bool:
        return self.key.monthly_budget_usd is not None or (
            self.team is not None and self.team.monthly_budget_usd is not None)


def sha256_of(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


class TenantSpend(msgspec.Struct, frozen=True):
    """This month's spend and open reservations by key and by team, as last read."""

    month: str = ""
    spent_by_key: dict[str, int] = msgspec.field(default_factory=dict)
    spent_by_team: dict[str, int] = msgspec.field(default_factory=dict)
    reserved_by_key: dict[str, int] = msgspec.field(default_factory=dict)
    reserved_by_team: dict[str, int] = msgspec.field(default_factory=dict)

    def used(self, kind: str, name: str) -> int:
        """Spent plus held, micro-USD, of one key ("key") or team ("team")."""
        if kind == "key":
            return self.spent_by_key.get(name, 0) + self.reserved_by_key.get(name, 0)
        return self.spent_by_team.get(name, 0) + self.reserved_by_team.get(name, 0)


def budgets_of(tenant: Tenant) -> list[tuple[str, str, float]]:
    """(kind, name, monthly budget in USD) of every budget a tenant's request spends."""
    found = []
    if tenant.key.monthly_budget_usd is not None:
        found.append(("key", tenant.key.name, tenant.key.monthly_budget_usd))
    team = tenant.team
    if team is not None and team.monthly_budget_usd is not None:
        found.append(("team", team.name, team.monthly_budget_usd))
    return found
