"""One contract, two stores: the in-process one and Redis (a real redis-server)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import msgspec
import pytest

from nexus.budget.records import Reservation, SpendRecord
from nexus.config.schema import RedisConfig
from nexus.store.base import Store
from nexus.store.memory import MemoryStore
from nexus.store.redis_store import RedisStore
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import RedisClusterServers

MONTH = "2026-11"


def spend(request_id: str, cost: int, backend: str = "cloud", model: str = "gpt-4o",
          month: str = MONTH, day: str = "") -> SpendRecord:
    return SpendRecord(request_id=request_id, month=month, backend=backend, model=model,
                       cost_micro_usd=cost, day=day)


@pytest.fixture(params=["memory", "redis", "cluster"])
async def store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Store]:
    month = [MONTH]
    made: Store
    if request.param == "memory":
        made = MemoryStore(month=lambda: month[0])
    elif request.param == "cluster":  # three masters: the scripts' keys must share slots
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        made = RedisStore(RedisConfig(mode="cluster", url=cluster.url, prefix=redis_prefix),
                          month=lambda: month[0])
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


async def test_spend_by_day_sums_to_the_month(store: Store) -> None:
    store.record_spend(spend("d1", 300, day=f"{MONTH}-01"))
    store.record_spend(spend("d2", 45, day=f"{MONTH}-01"))
    store.record_spend(spend("d3", 1_000, day=f"{MONTH}-17"))
    store.record_spend(spend("d3", 1_000, day=f"{MONTH}-17"))  # counted once, by day too
    await store.sync()
    breakdown = await store.breakdown(MONTH)
    assert breakdown.by_day == {f"{MONTH}-01": 345, f"{MONTH}-17": 1_000}
    assert sum(breakdown.by_day.values()) == breakdown.total_micro_usd


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


# -- tenants: the same contract on both stores -------------------------------------------

async def test_tenant_records_change_with_a_new_version(store: Store) -> None:
    from nexus.tenants.model import KeyRecord, TeamRecord

    before = store.tenant_records().version
    await store.save_team(TeamRecord(name="research", rpm=10))
    await store.save_key(KeyRecord(name="alice", secret_sha256="ab" * 32, team="research"))
    records = store.tenant_records()  # seen at once by the replica that made them
    assert records.version > before
    assert (records.keys["alice"].team, records.teams["research"].rpm) == ("research", 10)
    assert await store.delete_key("alice")
    assert not await store.delete_key("alice")
    assert "alice" not in store.tenant_records().keys


async def test_rate_checks_admit_exactly_the_limit_and_settle_tokens(store: Store) -> None:
    from nexus.tenants.rates import RateCheck, RateSubject

    subject = RateSubject(f"key:{id(store)}", rpm=3, tpm=1000)
    checks = [RateCheck(f"r{i}", 100, (subject,)) for i in range(5)]
    verdicts = await asyncio.gather(*(store.rate_check(c) for c in checks))  # one batch
    assert [v.allowed for v in verdicts] == [True, True, True, False, False]
    refused = verdicts[3]
    assert (refused.refused_by, refused.refused_limit) == (subject.name, "requests")
    assert 0 < refused.retry_after_ms <= 60_000
    assert sorted(v.quotas[0].remaining_requests for v in verdicts[:3]) == [0, 1, 2]
    store.settle_rate(checks[0], 40)
    if isinstance(store, RedisStore):  # what its settle loop sends, sent now (idempotent)
        await store.tenants.settle_now()
    assert await store.rate_usage(subject) == (3, 240)


async def test_many_checks_of_a_key_and_its_team_in_few_calls_stay_exact(store: Store) -> None:
    from nexus.tenants.rates import RateCheck, RateSubject

    team = RateSubject(f"team:{id(store)}", rpm=500, tpm=0)
    key = RateSubject(f"key:{id(store)}", rpm=0, tpm=10_000_000, slot=team.name)
    checks = [RateCheck(f"m{i}", 30 + i % 7, (key, team)) for i in range(700)]
    verdicts = await asyncio.gather(*(store.rate_check(c) for c in checks))
    admitted = [c for c, v in zip(checks, verdicts, strict=True) if v.allowed]
    assert len(admitted) == 500
    assert all(v.refused_by == team.name for v in verdicts if not v.allowed)
    assert await store.rate_usage(team) == (500, sum(c.tokens for c in admitted))
    for check in admitted:
        store.settle_rate(check, 5)
    if isinstance(store, RedisStore):
        await store.tenants.settle_now()
    assert await store.rate_usage(key) == (500, 2500)
    assert await store.rate_usage(team) == (500, 2500)


async def test_a_hold_checks_the_key_and_team_budgets_all_or_none(store: Store) -> None:
    def held(request_id: str, estimate: int) -> Reservation:
        return Reservation(request_id=request_id, month=MONTH, backend="cloud",
                           model="gpt-4o", estimate_micro_usd=estimate, limit_micro_usd=None,
                           ttl_seconds=60, key="alice", key_limit_micro_usd=1000,
                           team="research", team_limit_micro_usd=1500)

    assert await store.hold(held("r1", 600)) == ""
    assert await store.hold(held("r2", 600)) == "key"    # 600 + 600 > alice's 1000
    store.record_spend(msgspec.structs.replace(spend("r1", 500), key="alice",
                                               team="research", reserved=True))
    await store.sync()
    assert await store.hold(held("r3", 500)) == ""       # 500 spent + 500 = 1000
    other = msgspec.structs.replace(held("r4", 600), key="bob", key_limit_micro_usd=None)
    assert await store.hold(other) == "team"             # 500 + 500 + 600 > 1500
    breakdown = await store.breakdown(MONTH)
    assert (breakdown.by_key, breakdown.by_team) == ({"alice": 500}, {"research": 500})
