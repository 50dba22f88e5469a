"""Checks the schema cannot express: URLs, unique names, alias graphs, globs.

Each check yields every problem it finds, so `nexus check` reports them all in one run;
`validate` (what loading a config runs) raises the first. `environment_problems` says
what this environment lacks that `nexus serve` needs: variables the file names.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from yarl import URL

from nexus.config.errors import ConfigError
from nexus.config.schema import BackendConfig, Config, RedisConfig
from nexus.core.masking import mask_url
from nexus.tenants.table import glob_problem

MAX_ALIAS_CHAIN = 3  # names in a chain: A→B→C is fine, A→B→C→D is rejected
CLOUD_TYPES = frozenset({"openai", "anthropic", "gemini"})
_HEADER_SAFE = re.compile(r"^[A-Za-z0-9._:@/+-]+$")


def validate(config: Config, source: str) -> None:
    for problem in problems(config, source):
        raise problem


def problems(config: Config, source: str) -> list[ConfigError]:
    """Everything wrong in the file (after the schema), in the file's order."""
    return [*_check_backends(config.backends, source), *_check_redis_url(config, source),
            *_check_aliases(config.routing.aliases, source), *_check_policies(config, source),
            *_check_tenants(config, source)]


def environment_problems(config: Config, env: Mapping[str, str]) -> list[ConfigError]:
    """What `nexus serve` would refuse in this environment: each variable the file names
    for a secret must be set and not empty."""
    named = [("server.api_keys_env", config.server.api_keys_env),
             ("server.admin_key_env", config.server.admin_key_env),
             ("server.metrics_key_env", config.server.metrics_key_env),
             *((f"keys[{i}].secret_env", k.secret_env) for i, k in enumerate(config.keys))]
    found = [ConfigError("environment", variable, f"{setting} names this variable, but it "
                         "is unset or empty")
             for setting, variable in named if variable and not env.get(variable, "").strip()]
    can_have_keys = config.server.api_keys_env or config.keys or config.server.admin_key_env
    if config.server.auth == "required" and not can_have_keys:
        found.append(ConfigError("configuration", "server.auth", "is \"required\", but no "
                                 "client key can exist: set server.api_keys_env, add [[keys]], "
                                 "or set server.admin_key_env"))
    return found


def _check_backends(backends: list[BackendConfig], source: str) -> Iterator[ConfigError]:
    seen: set[str] = set()
    for index, backend in enumerate(backends):
        where = f"backends[{index}]"
        if not _HEADER_SAFE.match(backend.name):
            yield ConfigError(source, f"{where}.name",
                              f"{backend.name!r} must be letters, digits and ._:@/+- only")
        if backend.name in seen:
            yield ConfigError(source, f"{where}.name", f"duplicate backend name {backend.name!r}")
        seen.add(backend.name)
        yield from _check_http_url(backend.url, source, f"{where}.url")
        if backend.type in CLOUD_TYPES and not backend.api_key_env:
            yield ConfigError(source, f"{where}.api_key_env",
                              f"required for type {backend.type!r}: the name of the "
                              "environment variable that holds the API key")


def _check_http_url(value: str, source: str, key: str) -> Iterator[ConfigError]:
    try:
        url = URL(value)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host:
        yield ConfigError(source, key, f"expected an http:// or https:// URL, got {value!r}")


def _check_redis_url(config: Config, source: str) -> Iterator[ConfigError]:
    if config.redis is None:
        return
    yield from _check_redis_mode(config.redis, source)
    if config.redis.mode == "sentinel" or (config.redis.mode == "cluster"
                                           and config.redis.nodes):
        return  # no url to read
    try:
        url = URL(config.redis.url)
    except (ValueError, TypeError):
        url = None
    if url is None or url.scheme not in ("redis", "rediss", "unix"):
        yield ConfigError(source, "redis.url",
                          "expected a redis://, rediss:// or unix:// URL, "
                          f"got {mask_url(config.redis.url)!r}")


def _check_redis_mode(redis: RedisConfig, source: str) -> Iterator[ConfigError]:
    if redis.mode == "sentinel":
        if not redis.sentinels:
            yield ConfigError(source, "redis.sentinels", 'mode "sentinel" needs the '
                              'sentinels, as ["host:port", ...]')
        if not redis.master_name:
            yield ConfigError(source, "redis.master_name", 'mode "sentinel" needs the name '
                              "the sentinels monitor the master under")
    if redis.mode == "cluster" and redis.wait_replicas:
        yield ConfigError(source, "redis.wait_replicas", "WAIT is not supported in cluster "
                          "mode (redis-py's cluster client cannot send it on the connection "
                          "that wrote); use sentinel for replicated, failover-safe spend")
    if redis.wait_replicas and redis.wait_timeout_ms >= redis.timeout_seconds * 1000:
        yield ConfigError(source, "redis.wait_timeout_ms", "must be under "
                          "redis.timeout_seconds, or every WAIT that times out is read as a "
                          "lost connection")
    for key, addresses in (("redis.sentinels", redis.sentinels), ("redis.nodes", redis.nodes)):
        for address in addresses:
            host, _, port = address.rpartition(":")
            if not host or not port.isdigit():
                yield ConfigError(source, key, f"expected host:port, got {address!r}")


def _check_aliases(aliases: dict[str, str], source: str) -> Iterator[ConfigError]:
    for start in aliases:
        chain = [start]
        while chain[-1] in aliases and aliases[chain[-1]] not in chain:
            chain.append(aliases[chain[-1]])
        if chain[-1] in aliases:  # the next name is already in the chain
            cycle = " -> ".join([*chain, aliases[chain[-1]]])
            yield ConfigError(source, f"routing.aliases.{start}", f"alias cycle: {cycle}")
        elif len(chain) > MAX_ALIAS_CHAIN:
            yield ConfigError(source, f"routing.aliases.{start}",
                              f"alias chain {' -> '.join(chain)} is longer than "
                              f"{MAX_ALIAS_CHAIN} names; point the alias at the model directly")


def _check_policies(config: Config, source: str) -> Iterator[ConfigError]:
    from wcmatch import fnmatch

    for index, policy in enumerate(config.routing.policies):
        try:
            fnmatch.compile(policy.model_pattern, flags=fnmatch.BRACE)
        except Exception as exc:  # wcmatch raises several types for bad patterns
            yield ConfigError(source, f"routing.policies[{index}].model_pattern",
                              f"invalid glob {policy.model_pattern!r}: {exc}")


def _check_tenants(config: Config, source: str) -> Iterator[ConfigError]:
    teams = [team.name for team in config.teams]
    if len(set(teams)) != len(teams):
        yield ConfigError(source, "teams", "team names must be unique")
    names: set[str] = set()
    for index, key in enumerate(config.keys):
        where = f"keys[{index}]"
        if key.name in names:
            yield ConfigError(source, f"{where}.name", f"duplicate key name {key.name!r}")
        names.add(key.name)
        if (key.secret_env is None) == (key.secret_sha256 is None):
            yield ConfigError(source, where, "give exactly one of secret_env (the variable "
                              "holding the secret) or secret_sha256 (its SHA-256, hex)")
        if key.team is not None and key.team not in teams:
            yield ConfigError(source, f"{where}.team", f"no [[teams]] entry named {key.team!r}")
        problem = glob_problem(key.models)
        if problem is not None:
            yield ConfigError(source, f"{where}.models", problem)
