"""One contract, two stores: the in-process one and Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from nexus.config.schema import RedisConfig
from nexus.store.base import Reservation, SpendRecord, Store
from nexus.store.memory import MemoryStore
from nexus.store.redis_store import RedisStore
from tests.redis_server import RedisServer

MONTH = "2026-11"


def spend(request_id: str, cost: int, backend: str = "cloud", model: str = "gpt-4o",
          month: str = MONTH) -> SpendRecord:
    return SpendRecord(request_id=request_id, month=month, backend=backend, model=model,
                       cost_micro_usd=cost)


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Store]:
    month = [MONTH]
    made: Store
    if request.param == "memory":
        made = MemoryStore(month=lambda: month[0])
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        made = RedisStore(RedisConfig(url=server.url, prefix=redis_prefix),
                          month=lambda: month[0])
    await made.start()
    yield made
    await made.close()


async def test_spend_adds_up_exactly_per_backend_and_model(store: Store) -> None:
    store.record_spend(spend("r1", 1_500))
    store.record_spend(spend("r2", 7, backend="other", model="claude-haiku"))
    store.record_spend(spend("r3", 2_000_000_001))  # past 2^31: integers, never floats
    await store.sync()
    assert store.budget_view().spent_micro_usd == 2_000_001_508
    breakdown = await store.breakdown(MONTH)
    assert breakdown.total_micro_usd == 2_000_001_508
    assert breakdown.by_backend == {"cloud": 2_000_001_501, "other": 7}
    assert breakdown.by_model == {"gpt-4o": 2_000_001_501, "claude-haiku": 7}


async def test_the_view_counts_this_replicas_spend_from_the_moment_it_is_recorded(
        store: Store) -> None:
    view = store.budget_view()
    assert store.budget_view() is view  # nothing changed: the same view, status cached
    store.record_spend(spend("r1", 1_500))
    assert store.budget_view().spent_micro_usd == 1_500
    if isinstance(store, RedisStore):
        await store.flush()  # written, the next snapshot not read yet
        assert store.budget_view().spent_micro_usd == 1_500
    await store.sync()
    assert store.budget_view().spent_micro_usd == 1_500
    assert store.budget_view() is store.budget_view()


async def test_each_request_id_counts_once(store: Store) -> None:
    store.record_spend(spend("same", 100))
    await store.sync()
    store.record_spend(spend("same", 100))  # a retried write, after the first landed
    store.record_spend(spend("same", 100))
    await store.sync()
    assert (await store.breakdown(MONTH)).total_micro_usd == 100


async def test_free_requests_write_nothing(store: Store) -> None:
    store.record_spend(spend("free", 0))
    await store.sync()
    assert (await store.breakdown(MONTH)).by_backend == {}


async def test_many_concurrent_writers_lose_nothing(store: Store) -> None:
    async def writer(n: int) -> None:
        for i in range(50):
            store.record_spend(spend(f"w{n}-{i}", 1 + i))
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(n) for n in range(20)))
    await store.sync()
    assert (await store.breakdown(MONTH)).total_micro_usd == 20 * sum(range(1, 51))


async def test_months_are_kept_apart(store: Store) -> None:
    store.record_spend(spend("old", 10, month="2026-10"))
    store.record_spend(spend("new", 20))
    await store.sync()
    assert store.budget_view().spent_micro_usd == 20
    assert (await store.breakdown("2026-10")).total_micro_usd == 10


def hold(request_id: str, estimate: int, limit: int = 1_000) -> Reservation:
    return Reservation(request_id=request_id, month=MONTH, backend="cloud", model="gpt-4o",
                       estimate_micro_usd=estimate, limit_micro_usd=limit, ttl_seconds=60)


async def reserved_now(store: Store) -> int:
    return (await store.breakdown(MONTH)).reserved_micro_usd


async def test_a_reservation_is_refused_past_the_limit(store: Store) -> None:
    assert await store.reserve(hold("a", 600))
    assert not await store.reserve(hold("b", 401))  # 600 held + 401 > 1000
    assert await store.reserve(hold("c", 400))      # exactly at the limit is allowed
    assert await store.reserve(hold("a", 600))      # asking again holds nothing more
    assert await reserved_now(store) == 1000


async def test_settling_replaces_the_estimate_with_the_actual_cost(store: Store) -> None:
    assert await store.reserve(hold("r", 600))
    store.record_spend(msgspec.structs.replace(spend("r", 250), reserved=True))
    await store.sync()
    breakdown = await store.breakdown(MONTH)
    assert (breakdown.total_micro_usd, breakdown.reserved_micro_usd) == (250, 0)
    assert await store.reserve(hold("next", 750))   # 250 spent + 750 = the limit


async def test_an_unserved_request_releases_its_hold(store: Store) -> None:
    assert await store.reserve(hold("r", 600))
    await store.release("r", MONTH)
    breakdown = await store.breakdown(MONTH)
    assert (breakdown.total_micro_usd, breakdown.reserved_micro_usd) == (0, 0)


async def test_spend_counts_against_new_reservations(store: Store) -> None:
    store.record_spend(spend("paid", 900))
    await store.sync()
    assert not await store.reserve(hold("more", 101))
    assert await store.reserve(hold("less", 100))
