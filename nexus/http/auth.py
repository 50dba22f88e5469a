"""Who a request is from: the key table built from the config, the environment's client
keys and the store's snapshot, rebuilt only when one of them changes.

Authentication is required as soon as any key exists (`server.api_keys_env`,
`[[keys]]`) or the admin API has ever made one, and it stays required: revoking the
last key, or a store that loses its data (FLUSHALL, a Redis restarted without
persistence), never opens the gateway again. A store that goes back to no records
after it had some is reported loudly, and the last key table is kept until the store
holds records again. `server.auth = "required"` closes a fresh replica too, before it
has seen a key. The admin key (`server.admin_key_env`) opens /admin/, the dashboard
and the read endpoints, and is never a client key; the metrics key
(`server.metrics_key_env`) opens /metrics' per-tenant series only.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Mapping

from multidict import istr

from nexus.config.errors import ConfigError
from nexus.config.schema import Config, KeyConfig, TeamConfig
from nexus.core.errors import Unauthorized
from nexus.store.base import TenantRecords, TenantSource
from nexus.tenants.model import KeyRecord, TeamRecord, Tenant, sha256_of
from nexus.tenants.table import TenantTable, expires_at

AUTHORIZATION, API_KEY = istr("Authorization"), istr("x-api-key")
LOGIN_HINT = "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'x-api-key'"
log = logging.getLogger(__name__)


class Tenancy:
    def __init__(self, config: Config, store: TenantSource, env: Mapping[str, str]) -> None:
        self.store = store
        self.static_keys = _environment_keys(config, env) + [
            _key_from_config(k, index, env) for index, k in enumerate(config.keys)]
        self.static_teams = [_team_from_config(t) for t in config.teams]
        self.admin_key = _env_secret(config.server.admin_key_env, "server.admin_key_env", env)
        self.metrics_key = _env_secret(config.server.metrics_key_env, "server.metrics_key_env",
                                       env)
        self.required = config.server.auth == "required" or bool(self.static_keys)
        if self.required and not (self.static_keys or self.admin_key):
            raise ConfigError("configuration", "server.auth",
                              "is \"required\", but no client key can exist: set "
                              "server.api_keys_env, add [[keys]], or set server.admin_key_env "
                              "to make keys with the admin API")
        self.store_lost_keys = False  # the store went back to no records: see _lost
        self._version = -1
        self._kept = TenantRecords()  # the store's records as last seen non-empty
        self.table = TenantTable()
        self.refresh()

    def refresh(self) -> TenantTable:
        """The table, rebuilt when the store's records moved on (a dict lookup when not)."""
        records = self.store.tenant_records()
        if records.version != self._version:
            if records.version == 0 and self._kept.version > 0:
                self._lost(records)
            elif records.version > 0:
                self._kept, self.store_lost_keys = records, False
            self._version = records.version
            self.table = self._table(self._kept if self.store_lost_keys else records)
            # Once required, always: no store answer ever opens the gateway again.
            self.required = self.required or records.version > 0
        return self.table

    def _table(self, records: TenantRecords) -> TenantTable:
        static = {k.name for k in self.static_keys}
        return TenantTable(
            [*self.static_keys, *(k for k in records.keys.values() if k.name not in static)],
            [*self.static_teams, *records.teams.values()])

    def _lost(self, records: TenantRecords) -> None:
        """The store had keys and now has none: it lost its data. Fail closed, loudly."""
        if not self.store_lost_keys:
            log.error("the store lost its tenant records (version %d with %d keys and %d "
                      "teams, now none): was Redis flushed, or restarted without "
                      "persistence? Keys stay required; the last key table is kept until "
                      "the store holds records again. Recreate the keys (nexus keys "
                      "create) or restore Redis.", self._kept.version,
                      len(self._kept.keys), len(self._kept.teams))
        self.store_lost_keys = True

    def authenticate(self, headers: Mapping[str, str]) -> Tenant | None:
        """The request's tenant; None when no key is required and none was sent.
        Raises Unauthorized for a missing, unknown, revoked or expired key."""
        secret = presented_secret(headers)
        table = self.refresh()
        if not self.required:
            return None if secret is None else table.authenticate(secret)
        tenant = table.authenticate(secret) if secret is not None else None
        if tenant is None:
            expired = table.expired(secret) if secret is not None else None
            if expired is not None:
                raise Unauthorized(f"This API key ({expired.name}) has expired; ask for a new "
                                   "one", code="expired_api_key")
            raise Unauthorized(LOGIN_HINT)
        return tenant

    def is_admin(self, headers: Mapping[str, str]) -> bool:
        return _matches(presented_secret(headers), self.admin_key)

    def is_scraper(self, headers: Mapping[str, str]) -> bool:
        """The admin key or the metrics key: may read every tenant's series."""
        secret = presented_secret(headers)
        return _matches(secret, self.admin_key) or _matches(secret, self.metrics_key)


def _matches(secret: str | None, expected: str | None) -> bool:
    return bool(expected and secret and
                hmac.compare_digest(secret.encode(), expected.encode()))


def presented_secret(headers: Mapping[str, str]) -> str | None:
    """The key a request presents. A header that is not text (bytes that are not UTF-8)
    is no key: it fails as a wrong key does, never as an error of ours."""
    scheme, _, token = headers.get(AUTHORIZATION, "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return _text(token.strip())
    return _text(headers.get(API_KEY, "").strip()) or None


def _text(value: str) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:  # aiohttp keeps undecodable bytes as lone surrogates
        return "\ufffd"  # matches no key's hash, and is not empty: "invalid", not "missing"
    return value


def _environment_keys(config: Config, env: Mapping[str, str]) -> list[KeyRecord]:
    """`server.api_keys_env`: keys with no limits, named by their hash's start."""
    name = config.server.api_keys_env
    if not name:
        return []
    secrets = [k.strip() for k in env.get(name, "").split(",") if k.strip()]
    if not secrets:
        raise ConfigError("environment", name,
                          "server.api_keys_env names this variable, but it is unset or empty; "
                          "set it to comma-separated client keys")
    return [KeyRecord(name=f"env-{sha256_of(s)[:8]}", secret_sha256=sha256_of(s),
                      source="environment") for s in secrets]


def _key_from_config(key: KeyConfig, index: int, env: Mapping[str, str]) -> KeyRecord:
    digest = key.secret_sha256
    if key.secret_env is not None:
        secret = env.get(key.secret_env, "").strip()
        if not secret:
            raise ConfigError("environment", key.secret_env,
                              f"keys[{index}].secret_env names this variable, but it is unset "
                              "or empty")
        digest = sha256_of(secret)
    assert digest is not None  # validation asks for one of the two
    return KeyRecord(name=key.name, secret_sha256=digest, team=key.team, models=key.models,
                     privacy=key.privacy, expires_at=expires_at(key.expires_at),
                     monthly_budget_usd=key.monthly_budget_usd, rpm=key.rpm, tpm=key.tpm,
                     when_stale=key.when_stale, metadata=key.metadata, source="config")


def _team_from_config(team: TeamConfig) -> TeamRecord:
    return TeamRecord(name=team.name, monthly_budget_usd=team.monthly_budget_usd,
                      rpm=team.rpm, tpm=team.tpm, when_stale=team.when_stale,
                      metadata=team.metadata)


def _env_secret(name: str | None, setting: str, env: Mapping[str, str]) -> str | None:
    if not name:
        return None
    key = env.get(name, "").strip()
    if not key:
        raise ConfigError("environment", name, f"{setting} names this variable, but it is "
                          "unset or empty")
    return key
