"""Strict budgets on Redis: reservations a dead replica left are counted by the leader."""

from __future__ import annotations

import redis.asyncio as redis

from nexus.budget.month import day_of
from nexus.budget.records import Reservation, SpendRecord
from nexus.config.schema import RedisConfig
from nexus.fleet.leader import Leadership
from nexus.store.redis_store import RedisStore
from tests.support.redis_server import RedisServer

MONTH = "2026-11"


async def test_an_expired_reservation_counts_once_at_its_estimate(
        redis_server: RedisServer, redis_prefix: str) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url, prefix=redis_prefix),
                       month=lambda: MONTH, replica_id="dead")
    await store.start()
    held = Reservation(request_id="orphan", month=MONTH, backend="cloud", model="gpt-4o",
                       estimate_micro_usd=700, limit_micro_usd=10_000, ttl_seconds=-1)
    assert await store.reserve(held)  # already past its expiry: its replica "died"
    leader = Leadership(store.client, store.keys, "leader", 10_000)
    await leader.step()
    assert await store.expire_reservations(MONTH, leader.epoch) == 1
    assert await store.expire_reservations(MONTH, leader.epoch) == 0  # counted once
    breakdown = await store.breakdown(MONTH)
    assert (breakdown.total_micro_usd, breakdown.reserved_micro_usd) == (700, 0)
    assert breakdown.by_backend == {"cloud": 700}
    assert breakdown.by_day == {day_of(): 700}  # counted on the day the leader counts it
    # The replica was only slow: its late settle must not count the request again.

    store.record_spend(SpendRecord(request_id="orphan", month=MONTH, backend="cloud",
                                   model="gpt-4o", cost_micro_usd=650, reserved=True))
    await store.sync()
    assert (await store.breakdown(MONTH)).total_micro_usd == 700
    await store.close()


async def test_a_stale_leader_cannot_expire_reservations(
        redis_server: RedisServer, redis_prefix: str) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url, prefix=redis_prefix),
                       month=lambda: MONTH)
    await store.start()
    assert await store.reserve(Reservation(
        request_id="held", month=MONTH, backend="cloud", model="gpt-4o",
        estimate_micro_usd=5, limit_micro_usd=100, ttl_seconds=-1))
    old = Leadership(store.client, store.keys, "old", 10_000)
    await old.step()
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    await client.delete(store.keys.leader)  # the old leader's lease lapsed while paused
    new = Leadership(client, store.keys, "new", 10_000)
    await new.step()
    assert await store.expire_reservations(MONTH, old.epoch) == 0
    assert (await store.breakdown(MONTH)).reserved_micro_usd == 5
    assert await store.expire_reservations(MONTH, new.epoch) == 1
    await client.aclose()
    await store.close()


async def test_an_expired_tenant_reservation_counts_for_its_key_and_team(
        redis_server: RedisServer, redis_prefix: str) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url, prefix=redis_prefix),
                       month=lambda: MONTH, replica_id="dead")
    await store.start()
    held = Reservation(request_id="orphan", month=MONTH, backend="cloud", model="gpt-4o",
                       estimate_micro_usd=700, limit_micro_usd=None, ttl_seconds=-1,
                       key="alice", key_limit_micro_usd=1000, team="research",
                       team_limit_micro_usd=5000)
    assert await store.hold(held) == ""
    over = Reservation(request_id="second", month=MONTH, backend="cloud", model="gpt-4o",
                       estimate_micro_usd=400, limit_micro_usd=None, ttl_seconds=60,
                       key="alice", key_limit_micro_usd=1000)
    assert await store.hold(over) == "key"  # 700 held + 400 would pass alice's 1000
    leader = Leadership(store.client, store.keys, "leader", 10_000)
    await leader.step()
    assert await store.expire_reservations(MONTH, leader.epoch) == 1
    breakdown = await store.breakdown(MONTH)
    assert (breakdown.by_key, breakdown.by_team) == ({"alice": 700}, {"research": 700})
    client = store.client
    assert int(await client.hget(store.keys.reserved_by(MONTH, "key"), "alice") or 0) == 0
    assert int(await client.hget(store.keys.reserved_by(MONTH, "team"), "research") or 0) == 0
    await store.close()
