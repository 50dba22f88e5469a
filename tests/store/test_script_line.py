"""The rate checks' script caller on its own connection, against a real redis-server:
it heals after the script cache is flushed and after its connection is killed, and a
Redis that is gone is an error the store's circuit hears of."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis
from redis.exceptions import ConnectionError, ResponseError

from nexus.store.script_line import ScriptLine
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

    from nexus.store.script_line import resp_command

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
