"""One Redis client for every topology, made by redis-py's own clients: a plain client
(standalone), the master a Sentinel names (sentinel), or a RedisCluster (cluster).

Each speaks the same commands; the cluster client routes every command by its keys'
slot, which keys.py keeps cluster-safe (each script's keys share one hash tag).
"""

from __future__ import annotations

import os
import weakref
from typing import Any, cast

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.sentinel import Sentinel

from nexus.config.errors import ConfigError
from nexus.config.schema import RedisConfig
from nexus.core.masking import mask_url

_SENTINELS: weakref.WeakKeyDictionary[redis.Redis, list[redis.Redis]] = \
    weakref.WeakKeyDictionary()


def redis_client(config: RedisConfig, environ: dict[str, str] | None = None) -> redis.Redis:
    """The client for `config`. Typed as redis.Redis: the cluster client takes the same
    commands (routed by slot), which is all the store uses of it."""
    options = _options(config, environ if environ is not None else dict(os.environ))
    if config.mode == "sentinel":
        make: Any = Sentinel  # redis-py leaves its constructor untyped
        sentinel = make([_address(a) for a in config.sentinels],
                        sentinel_kwargs=_sentinel_options(options), **options)
        client = cast(redis.Redis, sentinel.master_for(config.master_name, **options))
        _SENTINELS[client] = sentinel.sentinels  # closed with the client
        return client
    if config.mode == "cluster":
        if config.nodes:
            nodes = [ClusterNode(*_address(a)) for a in config.nodes]
            return cast(redis.Redis, RedisCluster(startup_nodes=nodes, **options))
        return cast(redis.Redis, RedisCluster.from_url(config.url, **options))
    return redis.Redis.from_url(config.url, **options)


async def close_client(client: redis.Redis) -> None:
    """Close the client, and for sentinel mode the connections to the sentinels too."""
    sentinels = _SENTINELS.pop(client, None)
    if sentinels is None:
        await client.aclose()
        return
    # master_for hands the client a pool it does not own: close that pool too.
    await client.aclose(close_connection_pool=True)
    for sentinel in sentinels:
        await sentinel.aclose(close_connection_pool=True)


def redis_where(config: RedisConfig) -> str:
    """Where the store's Redis is, in words for the log (credentials masked)."""
    if config.mode == "sentinel":
        return f"master {config.master_name!r} of sentinels {', '.join(config.sentinels)}"
    if config.mode == "cluster" and config.nodes:
        return f"cluster {', '.join(config.nodes)}"
    where = mask_url(config.url)
    return f"cluster {where}" if config.mode == "cluster" else where


def _options(config: RedisConfig, environ: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {"socket_timeout": config.timeout_seconds,
                               "socket_connect_timeout": config.timeout_seconds,
                               "decode_responses": True}
    if config.username:
        options["username"] = config.username
    if config.password_env:
        password = environ.get(config.password_env, "")
        if not password:
            raise ConfigError("environment", config.password_env, "redis.password_env names "
                              "this variable, but it is unset or empty")
        options["password"] = password
    if config.tls:
        options["ssl"] = True
    return options


def _sentinel_options(options: dict[str, Any]) -> dict[str, Any]:
    """Sentinels take the same timeouts, credentials and TLS as the master."""
    return {k: v for k, v in options.items() if k != "decode_responses"}


def _address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)
