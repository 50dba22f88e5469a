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
from wcmatch._wcparse import PatternLimitException  # raised by fnmatch, exported nowhere

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

    def expired(self, secret: str) -> KeyRecord | None:
        """The key a secret names when that key has expired (to say so)."""
        key = self._by_hash.get(sha256_of(secret))
        return key if key is not None and key.expired() else None

    def by_name(self, name: str) -> Tenant | None:
        key = self.keys.get(name)
        return None if key is None else self.tenant(key)

    def tenant(self, key: KeyRecord) -> Tenant:
        found = self._tenants.get(key.name)
        if found is None:
            team = self.teams.get(key.team) if key.team else None
            found = self._tenants[key.name] = Tenant(key, team, rate_subjects(key, team))
        return found


# A key's model globs are checked on every request it sends: each must stay small.
MAX_GLOBS, MAX_GLOB_CHARS, MAX_GLOB_EXPANSION = 64, 256, 64


def allows_model(key: KeyRecord, model: str) -> bool:
    """Whether the key may use `model`. A glob that cannot be matched (one stored before
    globs were checked) allows nothing: closed, never an error."""
    if not key.models:
        return True
    try:
        return any(fnmatch.fnmatch(model, pattern, flags=fnmatch.BRACE,
                                   limit=MAX_GLOB_EXPANSION) for pattern in key.models)
    except PatternLimitException:
        return False


def glob_problem(patterns: list[str]) -> str | None:
    """What is wrong with a key's model globs, naming the limit; None when nothing is."""
    if len(patterns) > MAX_GLOBS:
        return f"a key takes at most {MAX_GLOBS} model globs, not {len(patterns)}"
    for pattern in patterns:
        if not pattern or len(pattern) > MAX_GLOB_CHARS:
            return f"a model glob has 1 to {MAX_GLOB_CHARS} characters: {pattern[:40]!r}"
        try:
            fnmatch.translate(pattern, flags=fnmatch.BRACE, limit=MAX_GLOB_EXPANSION)
        except PatternLimitException:
            return (f"the model glob {pattern[:40]!r} expands to more than "
                    f"{MAX_GLOB_EXPANSION} patterns (its braces multiply)")
    return None


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
