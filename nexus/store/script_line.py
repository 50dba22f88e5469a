"""One Lua script called over a connection of its own, for a caller that sends one call
at a time (the rate-check sender, the token settlements' writer).

redis-py's command path (pool checkout and return, retry wrapper, observability
hooks) costs more CPU than the call itself; a limited request pays a share of every
call, so the rate checks hold one of the pool's own connections (which has done its
AUTH, SELECT, TLS and Sentinel's master lookup already) and write EVALSHA on it
directly. A failed call drops the connection, and the next call takes a fresh one.
On a Redis Cluster, where the connection depends on the keys' slot, the call goes
through redis-py's script object, which follows MOVED.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError, NoScriptError


class ScriptLine:
    def __init__(self, client: redis.Redis | Any, source: str) -> None:
        self._script = client.register_script(source)
        self._pool = getattr(client, "connection_pool", None)  # none on a RedisCluster
        self._connection: AbstractConnection | None = None
        self._closed = False  # after close, no call opens a connection the pool won't close

    @property
    def one_node(self) -> bool:
        """True when every key lives on one server (not a cluster): a batch's checks of
        any tenants may then go in one call."""
        return self._pool is not None

    async def __call__(self, keys: list[str], args: list[Any]) -> Any:
        """The script's answer. Never two at once: the caller sends one call at a time."""
        pool = self._pool
        if pool is None:
            return await self._script(keys=keys, args=args)
        if self._closed:
            raise ConnectionError("the store is closed")
        for attempt in range(2):
            connection, held = self._connection, self._connection is not None
            if connection is None:
                connection = await self._connect(pool)
            try:
                return await self._call(connection, keys, args)
            except (ConnectionError, OSError):
                await self._drop(connection)
                # A held connection may have been closed while idle: sent again once. Had
                # the script run before the connection broke, its checks count twice:
                # a key refused early, never one let past its limit.
                if not held or attempt:
                    raise
            except BaseException:
                await self._drop(connection)
                raise
        raise AssertionError("unreachable")

    async def _call(self, connection: AbstractConnection, keys: list[str],
                    args: list[Any]) -> Any:
        try:
            return await self._send(connection, "EVALSHA", self._script.sha, keys, args)
        except NoScriptError:  # a restarted or flushed Redis: EVAL caches it again
            return await self._send(connection, "EVAL", self._script.script, keys, args)

    async def _connect(self, pool: Any) -> AbstractConnection:
        connection: AbstractConnection = await pool.get_connection()
        if self._closed:  # closed while this one connected: the pool had let go already
            await connection.disconnect()
            await pool.release(connection)
            raise ConnectionError("the store is closed")
        self._connection = connection
        return connection

    async def _drop(self, connection: AbstractConnection) -> None:
        await connection.disconnect()
        if self._connection is not connection:  # close() dropped it under a call
            return
        self._connection = None
        assert self._pool is not None
        await self._pool.release(connection)

    @staticmethod
    async def _send(connection: AbstractConnection, command: str, script: Any,
                    keys: list[str], args: list[Any]) -> Any:
        await connection.send_packed_command(
            resp_command([command, script, len(keys), *keys, *args]), check_health=False)
        return await connection.read_response()

    async def close(self) -> None:
        self._closed = True
        connection = self._connection
        if connection is not None:  # a call still out on it fails, and drops it
            await self._drop(connection)


def resp_command(args: list[Any]) -> bytes:
    """A command in RESP's wire form. redis-py's pack_command does the same with a type
    check per argument and costs more than the script call's own bytes; these are
    str, bytes or int only."""
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg if isinstance(arg, bytes) else str(arg).encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)
