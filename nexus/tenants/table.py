"""The key table one replica authenticates against: a dict lookup by the secret's hash.

It is rebuilt only when the keys change (from the config, the environment's client
keys and the store's snapshot), so authenticating a request asks Redis nothing and
costs one SHA-256 and one dict lookup, however many keys there are.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterable

from wcmatch import fnmatch

from nexus.tenants.model import KeyRecord, TeamRecord, Tenant, sha256_of
from nexus.tenants.rates import RateSubject


class TenantTable:
    def __init__(self, keys: Iterable[KeyRecord] = (),
                 teams: Iterable[TeamRecord] = ()) -> None:
        self.teams = {team.name: team for team in teams}
        self.keys = {key.name: key for key in keys}
        self._by_hash = {key.secret_sha256: key for key in self.keys.values()}
        self._tenants: dict[str, Tenant] = {}

    def __len__(self) -> int:
        return len(self.keys)

    def authenticate(self, secret: str) -> Tenant | None:
        """The tenant of a presented secret; None when unknown, revoked or expired."""
        key = self._by_hash.get(sha256_of(secret))
        if key is None or key.expired():
            return None
        return self.tenant(key)

    def by_name(self, name: str) -> Tenant | None:
        key = self.keys.get(name)
        return None if key is None else self.tenant(key)

    def tenant(self, key: KeyRecord) -> Tenant:
        found = self._tenants.get(key.name)
        if found is None:
            team = self.teams.get(key.team) if key.team else None
            found = self._tenants[key.name] = Tenant(key, team, rate_subjects(key, team))
        return found


def allows_model(key: KeyRecord, model: str) -> bool:
    return not key.models or any(fnmatch.fnmatch(model, pattern, flags=fnmatch.BRACE)
                                 for pattern in key.models)


def expires_at(day: str | None) -> float | None:
    """"YYYY-MM-DD" as unix time: the key stops working at 00:00 UTC that day."""
    if not day:
        return None
    return float(calendar.timegm(time.strptime(day, "%Y-%m-%d")))


def counted_as(kind: str, name: str, team: str | None = None) -> RateSubject:
    """The subject whose counters hold a key's (with its team) or a team's usage."""
    slot = f"team:{team}" if kind == "key" and team else ""
    return RateSubject(f"{kind}:{name}", slot=slot)


def rate_subjects(key: KeyRecord, team: TeamRecord | None) -> tuple[RateSubject, ...]:
    """What a tenant's requests count against: made once per key, not per request."""
    subjects = []
    if key.rate_limited:
        subjects.append(RateSubject(f"key:{key.name}", key.rpm or 0, key.tpm or 0,
                                    slot=f"team:{key.team}" if key.team else ""))
    if team is not None and team.rate_limited:
        subjects.append(RateSubject(f"team:{team.name}", team.rpm or 0, team.tpm or 0))
    return tuple(subjects)
