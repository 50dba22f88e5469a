"""Who a request is from: the key table built from the config, the environment's client
keys and the store's snapshot, rebuilt only when one of them changes.

Authentication is required as soon as any key exists (`server.api_keys_env`,
`[[keys]]`) or the admin API has ever made one (revoking the last key does not open
the gateway again). The admin key
(`server.admin_key_env`) opens /admin/ only and is never a client key.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from multidict import istr

from nexus.config.errors import ConfigError
from nexus.config.schema import Config, KeyConfig, TeamConfig
from nexus.core.errors import Unauthorized
from nexus.store.base import TenantSource
from nexus.tenants.model import KeyRecord, TeamRecord, Tenant, sha256_of
from nexus.tenants.table import TenantTable, expires_at

AUTHORIZATION, API_KEY = istr("Authorization"), istr("x-api-key")
LOGIN_HINT = "Missing or invalid API key: send 'Authorization: Bearer <key>' or 'x-api-key'"


class Tenancy:
    def __init__(self, config: Config, store: TenantSource, env: Mapping[str, str]) -> None:
        self.store = store
        self.static_keys = _environment_keys(config, env) + [
            _key_from_config(k, index, env) for index, k in enumerate(config.keys)]
        self.static_teams = [_team_from_config(t) for t in config.teams]
        self.admin_key = _admin_key(config, env)
        self._version = -1
        self.table = TenantTable()
        self.required = False
        self.refresh()

    def refresh(self) -> TenantTable:
        """The table, rebuilt when the store's records moved on (a dict lookup when not)."""
        records = self.store.tenant_records()
        if records.version != self._version:
            static = {k.name for k in self.static_keys}
            self.table = TenantTable(
                [*self.static_keys, *(k for k in records.keys.values() if k.name not in static)],
                [*self.static_teams, *records.teams.values()])
            self._version = records.version
            self.required = bool(self.static_keys) or records.version > 0
        return self.table

    def authenticate(self, headers: Mapping[str, str]) -> Tenant | None:
        """The request's tenant; None when no key is required and none was sent.
        Raises Unauthorized for a missing, unknown, revoked or expired key."""
        secret = presented_secret(headers)
        table = self.refresh()
        if not self.required:
            return None if secret is None else table.authenticate(secret)
        tenant = table.authenticate(secret) if secret is not None else None
        if tenant is None:
            raise Unauthorized(LOGIN_HINT)
        return tenant

    def is_admin(self, headers: Mapping[str, str]) -> bool:
        secret = presented_secret(headers)
        return bool(self.admin_key and secret and
                    hmac.compare_digest(secret.encode(), self.admin_key.encode()))


def presented_secret(headers: Mapping[str, str]) -> str | None:
    scheme, _, token = headers.get(AUTHORIZATION, "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    key = headers.get(API_KEY, "").strip()
    return key or None


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


def _admin_key(config: Config, env: Mapping[str, str]) -> str | None:
    name = config.server.admin_key_env
    if not name:
        return None
    key = env.get(name, "").strip()
    if not key:
        raise ConfigError("environment", name, "server.admin_key_env names this variable, but "
                          "it is unset or empty")
    return key
