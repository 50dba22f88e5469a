"""Making keys and teams, and showing them: shared by the admin API and `nexus keys`."""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from nexus.tenants.model import KeyRecord, Privacy, TeamRecord, WhenStale, new_secret, sha256_of
from nexus.tenants.table import expires_at, glob_problem

Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._:@+-]{1,64}$")]
Day = Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]
Count = Annotated[int, Meta(ge=1)]
Usd = Annotated[float, Meta(ge=0)]


class TenantError(ValueError):
    """A request to make a key or team that cannot be honoured; `param` names the field."""

    def __init__(self, message: str, param: str | None = None, conflict: bool = False) -> None:
        super().__init__(message)
        self.param = param
        self.conflict = conflict


class TeamCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    monthly_budget_usd: Usd | None = None
    rpm: Count | None = None
    tpm: Count | None = None
    when_stale: WhenStale | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class KeyCreate(TeamCreate, forbid_unknown_fields=True, kw_only=True):
    team: Name | None = None
    models: list[str] = msgspec.field(default_factory=list)
    privacy: Privacy = "unrestricted"
    expires_at: Day | None = None


def new_key(asked: KeyCreate, keys: Collection[str],
            teams: Collection[str]) -> tuple[KeyRecord, str]:
    """The record to store and the secret to show once (never stored)."""
    if asked.name in keys:
        raise TenantError(f"a key named {asked.name!r} exists; revoke it first", "name", True)
    if asked.team is not None and asked.team not in teams:
        raise TenantError(f"no team named {asked.team!r}", "team")
    problem = glob_problem(asked.models)
    if problem is not None:
        raise TenantError(problem, "models")
    secret = new_secret()
    return KeyRecord(name=asked.name, secret_sha256=sha256_of(secret), team=asked.team,
                     models=asked.models, privacy=asked.privacy,
                     expires_at=expires_at(asked.expires_at),
                     monthly_budget_usd=asked.monthly_budget_usd, rpm=asked.rpm, tpm=asked.tpm,
                     when_stale=asked.when_stale, metadata=asked.metadata,
                     created_at=time.time()), secret


def new_team(asked: TeamCreate, teams: Collection[str]) -> TeamRecord:
    if asked.name in teams:
        raise TenantError(f"a team named {asked.name!r} exists", "name", True)
    return TeamRecord(name=asked.name, monthly_budget_usd=asked.monthly_budget_usd,
                      rpm=asked.rpm, tpm=asked.tpm, when_stale=asked.when_stale,
                      metadata=asked.metadata, created_at=time.time())


def limits_view(record: KeyRecord | TeamRecord) -> dict[str, Any]:
    return {"monthly_budget_usd": record.monthly_budget_usd, "rpm": record.rpm,
            "tpm": record.tpm, "when_stale": record.when_stale, "metadata": record.metadata,
            "created_at": record.created_at or None}


def key_view(key: KeyRecord) -> dict[str, Any]:
    """A key as shown to operators: never its secret, nor its hash."""
    expiry = time.strftime("%Y-%m-%d", time.gmtime(key.expires_at)) if key.expires_at else None
    return {"name": key.name, "team": key.team, "models": key.models, "privacy": key.privacy,
            "expires_at": expiry, "expired": key.expired(), "source": key.source,
            **limits_view(key)}


def created_key(record: KeyRecord, secret: str) -> dict[str, Any]:
    """The answer to making a key: its secret (shown this once), its view, and a warning
    when it is born expired."""
    view = key_view(record)
    answer: dict[str, Any] = {"name": record.name, "secret": secret, "key": view}
    if record.expired():
        answer["warning"] = (f"key {record.name!r} expired already ({view['expires_at']} at "
                             "00:00 UTC): every request with it gets 401")
    return answer


def team_view(team: TeamRecord) -> dict[str, Any]:
    return {"name": team.name, **limits_view(team)}
