"""The rate checks' script caller on its own connection, against a real redis-server:
it heals after the script cache is flushed and after its connection is killed, and a
Redis that is gone is an error the store's circuit hears of."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError, ResponseError

from nexus.store.script_line import ScriptLine, resp_command
from tests.support.redis_server import RedisServer

ECHO = "redis.call('INCR', KEYS[1]); return ARGV[1]"


@pytest.fixture
async def client(redis_server: RedisServer, redis_prefix: str) -> AsyncIterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_server.url, decode_responses=True)
    yield connection
    await connection.aclose()


async def test_calls_reuse_one_connection_and_count_their_keys(client: redis.Redis,
                                                                redis_prefix: str) -> None:
    line = ScriptLine(client, ECHO)
    assert line.one_node
    key = f"{redis_prefix}:calls"
    for n in range(5):
        assert await line([key], [f"answer {n}"]) == f"answer {n}"
    assert await client.get(key) == "5"
    names = [c["name"] for c in await client.client_list()]
    assert len(names) <= 3  # the test's client, the held line: not a connection a call
    await line.close()


async def test_a_flushed_script_cache_is_refilled_by_the_next_call(client: redis.Redis,
                                                                   redis_prefix: str) -> None:
    line = ScriptLine(client, ECHO)
    assert await line([f"{redis_prefix}:k"], ["before"]) == "before"
    await client.script_flush()
    assert await line([f"{redis_prefix}:k"], ["after"]) == "after"
    assert await client.script_exists(line._script.sha) == [True]
    await line.close()


async def test_a_killed_connection_is_replaced_within_the_same_call(client: redis.Redis,
                                                                    redis_prefix: str) -> None:
    line = ScriptLine(client, ECHO)
    await line([f"{redis_prefix}:k"], ["first"])
    held = line._connection
    assert held is not None
    killed = await client.client_kill_filter(skipme=True, _type="normal")
    assert killed >= 1
    assert await line([f"{redis_prefix}:k"], ["second"]) == "second"
    await line.close()


async def test_a_script_error_is_raised_and_the_line_recovers(client: redis.Redis,
                                                              redis_prefix: str) -> None:
    line = ScriptLine(client, "return redis.call('INCR', KEYS[1])")
    key = f"{redis_prefix}:text"
    await client.set(key, "not a number")
    with pytest.raises(ResponseError):
        await line([key], [])
    await client.set(key, "1")
    assert await line([key], []) == 2
    await line.close()


async def test_a_redis_that_is_gone_is_a_connection_error(own_redis: RedisServer) -> None:
    client = redis.Redis.from_url(own_redis.url, decode_responses=True,
                                  socket_timeout=2, socket_connect_timeout=2)
    line = ScriptLine(client, ECHO)
    assert await line(["k"], ["up"]) == "up"
    own_redis.kill()
    with pytest.raises(ConnectionError):
        await line(["k"], ["down"])
    own_redis.restart()
    assert await line(["k"], ["back"]) == "back"
    await line.close()
    await client.aclose()


def test_commands_are_packed_as_redis_py_packs_them() -> None:
    from redis.connection import Connection

    args = ["EVALSHA", "ab" * 20, 2, "{p}:a", "{p}:b", 60000, b'[["r1",30,[[1,0,5]]]]', "é"]
    assert resp_command(args) == b"".join(Connection().pack_command(*args))


async def test_a_closed_line_refuses_calls_and_opens_no_connection(client: redis.Redis,
                                                                   redis_prefix: str) -> None:
    line = ScriptLine(client, ECHO)
    await line([f"{redis_prefix}:k"], ["open"])
    await line.close()
    assert line._connection is None
    with pytest.raises(ConnectionError, match="closed"):
        await line([f"{redis_prefix}:k"], ["after"])
    assert line._connection is None


async def test_a_line_closed_while_it_connects_lets_that_connection_go(
        client: redis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store closes its lines, then its pool: a call that was connecting meanwhile
    must not keep a socket that no one will close."""
    line = ScriptLine(client, ECHO)
    pool = client.connection_pool
    connected, go_on = asyncio.Event(), asyncio.Event()
    taken: list[Any] = []
    real_get = pool.get_connection

    async def slow_get_connection() -> Any:
        connection = await real_get()
        taken.append(connection)
        connected.set()
        await go_on.wait()
        return connection

    monkeypatch.setattr(pool, "get_connection", slow_get_connection)
    call = asyncio.create_task(line([f"{redis_prefix}:k"], ["late"]))
    await connected.wait()
    await line.close()
    go_on.set()
    with pytest.raises(ConnectionError, match="closed"):
        await call
    assert not taken[0].is_connected
    assert line._connection is None


async def test_a_line_closed_under_a_call_gives_its_connection_back_once(
        client: redis.Redis, redis_prefix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    line = ScriptLine(client, ECHO)
    await line([f"{redis_prefix}:k"], ["warm"])
    sent, go_on = asyncio.Event(), asyncio.Event()

    async def send_then_wait(connection: Any, command: str, script: Any, keys: list[str],
                             args: list[Any]) -> Any:
        await connection.send_packed_command(
            resp_command([command, script, len(keys), *keys, *args]), check_health=False)
        sent.set()
        await go_on.wait()  # the answer is on its way when close() comes
        return await connection.read_response()

    monkeypatch.setattr(ScriptLine, "_send", staticmethod(send_then_wait))
    call = asyncio.create_task(line([f"{redis_prefix}:k"], ["x"]))
    await sent.wait()
    await line.close()
    go_on.set()
    with pytest.raises(ConnectionError):  # its connection was closed under it
        await call
    assert client.connection_pool._in_use_connections == set()
    assert await client.ping()  # the pool still lends connections
