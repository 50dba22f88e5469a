"""Checks the schema cannot express: URLs, unique names, alias graphs, globs."""

from __future__ import annotations

import re

from yarl import URL

from nexus.config.errors import ConfigError
from nexus.config.schema import BackendConfig, Config, RedisConfig
from nexus.core.masking import mask_url
from nexus.tenants.table import glob_problem

MAX_ALIAS_CHAIN = 3  # names in a chain: A→B→C is fine, A→B→C→D is rejected
CLOUD_TYPES = frozenset({"openai", "anthropic"})
_HEADER_SAFE = re.compile(r"^[A-Za-z0-9._:@/+-]+$")


def validate(config: Config, source: str) -> None:
    _check_backends(config.backends, source)
    _check_redis_url(config, source)
    _check_aliases(config.routing.aliases, source)
    _check_policies(config, source)
    _check_tenants(config, source)


def _check_backends(backends: list[BackendConfig], source: str) -> None:
    seen: set[str] = set()
    for index, backend in enumerate(backends):
        where = f"backends[{index}]"
        if not _HEADER_SAFE.match(backend.name):
            raise ConfigError(source, f"{where}.name",
                              f"{backend.name!r} must be letters, digits and ._:@/+- only")
        if backend.name in seen:
            raise ConfigError(source, f"{where}.name", f"duplicate backend name {backend.name!r}")
        seen.add(backend.name)
        _check_http_url(backend.url, source, f"{where}.url")
        if backend.type in CLOUD_TYPES and not backend.api_key_env:
            raise ConfigError(source, f"{where}.api_key_env",
                              f"required for type {backend.type!r}: the name of the "
                              "environment variable that holds the API key")


def _check_http_url(value: str, source: str, key: str) -> None:
    try:
        url = URL(value)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        raise ConfigError(source, key, f"expected an http:// or https:// URL, got {value!r}")


def _check_redis_url(config: Config, source: str) -> None:
    if config.redis is None:
        return
    _check_redis_mode(config.redis, source)
    if config.redis.mode == "sentinel" or (config.redis.mode == "cluster"
                                           and config.redis.nodes):
        return  # no url to read
    try:
        url = URL(config.redis.url)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(source, "redis.url",
                          "expected a redis://, rediss:// or unix:// URL, "
                          f"got {mask_url(config.redis.url)!r}")


def _check_redis_mode(redis: RedisConfig, source: str) -> None:
    if redis.mode == "sentinel":
        if not redis.sentinels:
            raise ConfigError(source, "redis.sentinels", 'mode "sentinel" needs the '
                              'sentinels, as ["host:port", ...]')
        if not redis.master_name:
            raise ConfigError(source, "redis.master_name", 'mode "sentinel" needs the name '
                              "the sentinels monitor the master under")
    if redis.mode == "cluster" and redis.wait_replicas:
        raise ConfigError(source, "redis.wait_replicas", "WAIT is not supported in cluster "
                          "mode (redis-py's cluster client cannot send it on the connection "
                          "that wrote); use sentinel for replicated, failover-safe spend")
    if redis.wait_replicas and redis.wait_timeout_ms >= redis.timeout_seconds * 1000:
        raise ConfigError(source, "redis.wait_timeout_ms", "must be under "
                          "redis.timeout_seconds, or every WAIT that times out is read as a "
                          "lost connection")
    for key, addresses in (("redis.sentinels", redis.sentinels), ("redis.nodes", redis.nodes)):
        for address in addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(source, key, f"expected host:port, got {address!r}")


def _check_aliases(aliases: dict[str, str], source: str) -> None:
    for start in aliases:
        chain = [start]
        while chain[-1] in aliases:
            target = aliases[chain[-1]]
            if target in chain:
                cycle = " -> ".join([*chain, target])
                raise ConfigError(source, f"routing.aliases.{start}", f"alias cycle: {cycle}")
            chain.append(target)
        if len(chain) > MAX_ALIAS_CHAIN:
            raise ConfigError(source, f"routing.aliases.{start}",
                              f"alias chain {' -> '.join(chain)} is longer than "
                              f"{MAX_ALIAS_CHAIN} names; point the alias at the model directly")


def _check_policies(config: Config, source: str) -> None:
    from wcmatch import fnmatch

    for index, policy in enumerate(config.routing.policies):
        try:
            fnmatch.compile(policy.model_pattern, flags=fnmatch.BRACE)
        except Exception as exc:  # wcmatch raises several types for bad patterns
            raise ConfigError(source, f"routing.policies[{index}].model_pattern",
                              f"invalid glob {policy.model_pattern!r}: {exc}") from None


def _check_tenants(config: Config, source: str) -> None:
    teams = [team.name for team in config.teams]
    if len(set(teams)) != len(teams):
        raise ConfigError(source, "teams", "team names must be unique")
    names: set[str] = set()
    for index, key in enumerate(config.keys):
        where = f"keys[{index}]"
        if key.name in names:
            raise ConfigError(source, f"{where}.name", f"duplicate key name {key.name!r}")
        names.add(key.name)
        if (key.secret_env is None) == (key.secret_sha256 is None):
            raise ConfigError(source, where, "give exactly one of secret_env (the variable "
                              "holding the secret) or secret_sha256 (its SHA-256, hex)")
        if key.team is not None and key.team not in teams:
            raise ConfigError(source, f"{where}.team", f"no [[teams]] entry named {key.team!r}")
        problem = glob_problem(key.models)
        if problem is not None:
            raise ConfigError(source, f"{where}.models", problem)
