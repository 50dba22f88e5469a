"""Leader lease and epochs against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as redis

from nexus.fleet.leader import Leadership
from nexus.store.keys import Keys
from tests.support.helpers import eventually, until
from tests.support.redis_server import RedisServer

TTL_MS = 400

Candidate = Callable[[str], Leadership]


@pytest.fixture
async def candidate(redis_server: RedisServer,
                    redis_prefix: str) -> AsyncIterator[Candidate]:
    clients: list[redis.Redis] = []

    def make(replica: str) -> Leadership:
        client = redis.Redis.from_url(redis_server.url, decode_responses=True)
        clients.append(client)
        return Leadership(client, Keys(redis_prefix), replica, TTL_MS)

    yield make
    for client in clients:
        await client.aclose()


async def test_one_leader_at_a_time_and_the_holder_renews(candidate: Candidate) -> None:
    a, b = candidate("a"), candidate("b")
    await a.step()
    await b.step()
    assert (a.leading, a.epoch, b.leading) == (True, 1, False)
    await a.step()  # renewal keeps the same epoch
    assert a.epoch == 1
    await b.step()
    assert not b.leading


async def test_a_dead_leader_is_replaced_within_ttl_plus_one_renewal(
        candidate: Candidate) -> None:
    a, b = candidate("a"), candidate("b")
    await a.step()  # then "a" dies: it never renews again
    follower = asyncio.create_task(b.run_forever())
    # The bound: the lease runs out, then b's next attempt (one jittered period) takes it;
    # one extra second covers a slow machine without hiding a real failure to take over.
    await until(lambda: b.leading, within=TTL_MS / 1000 + b.period_seconds * 1.2 + 1.0)
    assert b.epoch == 2
    follower.cancel()
    await asyncio.gather(follower, return_exceptions=True)


async def test_a_paused_old_leader_has_its_writes_refused(
        candidate: Candidate, redis_prefix: str) -> None:
    a, b = candidate("a"), candidate("b")
    await a.step()
    assert await a.fenced_hset(f"{redis_prefix}:budget:2026-11", {"status": "normal"})
    # "a" pauses past its lease; "b" takes over.
    await eventually(lambda: a.client.exists(a.keys.leader), lambda held: not held)
    await b.step()
    assert b.epoch == 2
    assert not await a.fenced_hset(f"{redis_prefix}:budget:2026-11", {"status": "stale!"})
    assert not a.leading  # it learned it lost
    assert await a.client.hget(f"{redis_prefix}:budget:2026-11", "status") == "normal"
    assert await b.fenced_hset(f"{redis_prefix}:budget:2026-11", {"status": "soft_limit"})


async def test_release_on_shutdown_hands_over_at_once(
        candidate: Candidate, caplog: pytest.LogCaptureFixture) -> None:
    a, b = candidate("a"), candidate("b")
    await a.step()
    with caplog.at_level(logging.INFO):
        await a.release()
    assert not a.leading
    (record,) = [r for r in caplog.records if "released the lead" in r.getMessage()]
    assert record.levelno == logging.INFO  # a normal shutdown is no warning
    await b.step()
    assert (b.leading, b.epoch) == (True, 2)


async def test_only_the_holder_can_renew_or_release(candidate: Candidate) -> None:
    a, b = candidate("a"), candidate("b")
    await a.step()
    b.epoch = 99  # b wrongly believes it leads
    await b.step()
    assert not b.leading
    await b.release()
    assert await a.client.get(a.keys.leader) == a.token
