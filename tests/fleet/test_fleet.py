"""Three replica processes, one redis-server, paid mock backends: money stays exact.

Each mock bills a fixed usage per request, so the money the fleet owes is the
number of requests the mocks served times the price; Redis must say the same.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis

from nexus.budget.month import month_of
from nexus.store.keys import Keys
from tests.support.cluster import Replica, pause, resume, to_toml
from tests.support.helpers import MockFactory, chat, eventually, until
from tests.support.mock_backend import MockBackend
from tests.support.redis_server import RedisServer

PRICE = {"input": 1.0, "output": 2.0}  # USD per million tokens
PROMPT, COMPLETION = 1, 50             # what each mock bills per request
COST = -(-(PROMPT * 1000 + COMPLETION * 2000) // 1000)  # micro-USD per request: 101
# The gateway's estimate for chat("paid-model", max_tokens=COMPLETION): 4 tokens in.
ESTIMATE = -(-(4 * 1000 + COMPLETION * 2000) // 1000)   # 104, never below COST
REQUESTS = 2000
# Generous, so that no request times out on a loaded machine (each is a few ms of work);
# the strict tests wait it out once, for the dead replica's reservations to expire.
REQUEST_TIMEOUT = 30
DEADLINE = 180  # for conditions polled on a loaded machine: met long before on an idle one
# A Redis call or a health check slower than this counts as a failure: budgets then fail
# closed (503), backends are marked down (503). On a loaded machine a burst's calls and
# the mocks' health answers (served by this busy test process) take over 0.5-1 s; these
# tests are of kills and leases, not of slowness (a killed process refuses at once).
SLOW_ANSWER_SECONDS = 5


async def paid_mocks(mock_backend: MockFactory) -> list[MockBackend]:
    return [await mock_backend(name, models=["paid-model"], usage_prompt_tokens=PROMPT,
                               usage_completion_tokens=COMPLETION) for name in ("m1", "m2")]


def write_config(path: Path, redis_url: str, prefix: str, mocks: list[MockBackend],
                 budget: dict[str, Any] | None = None,
                 request_timeout: float = REQUEST_TIMEOUT) -> Path:
    tables: dict[str, dict[str, Any]] = {
        "server": {"request_timeout_seconds": request_timeout},
        "redis": {"url": redis_url, "prefix": prefix, "snapshot_interval_seconds": 0.2,
                  "timeout_seconds": SLOW_ANSWER_SECONDS},
        "fleet": {"lease_ttl_ms": 1500},
        "health_check": {"interval_seconds": 1, "timeout_seconds": SLOW_ANSWER_SECONDS},
        "queue": {"max_size": 5000, "max_wait_seconds": 10},
    }
    if budget:
        tables["routing.budget"] = budget
    backends = [{"name": m.name, "url": m.url, "type": "generic", "models": ["paid-model"],
                 "max_concurrent": 5000, "pricing": {"paid-model": dict(PRICE)}}
                for m in mocks]
    path.write_text(to_toml(tables, backends))
    return path


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[list[Replica]]:
    replicas: list[Replica] = []
    yield replicas
    for replica in replicas:
        replica.stop()


async def start_cluster(cluster: list[Replica], config: Path, http: aiohttp.ClientSession,
                        count: int = 3) -> list[Replica]:
    cluster += [Replica(config, f"r{i}").start() for i in range(count)]
    await asyncio.gather(*(r.ready(http) for r in cluster))
    return cluster


async def fire(http: aiohttp.ClientSession, replicas: list[Replica], count: int,
               **body: Any) -> list[int]:
    async def one(i: int) -> int:
        try:
            async with http.post(replicas[i % len(replicas)].url + "/v1/chat/completions",
                                 json=chat("paid-model", **body)) as response:
                await response.read()
                return response.status
        except aiohttp.ClientError:
            return 0  # the replica died under this request

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def redis_total(server: RedisServer, prefix: str) -> int:
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        return int(await client.get(Keys(prefix).spend_total(month_of())) or 0)
    finally:
        await client.aclose()


async def settled(server: RedisServer, prefix: str, expected: int, within: float = DEADLINE,
                  enough: Callable[[int], bool] | None = None) -> int:
    """Wait until Redis holds `expected` (replicas flush on their own), then return it."""
    return await eventually(lambda: redis_total(server, prefix),
                            enough or (lambda total: total == expected), within)


def billed(mocks: list[MockBackend]) -> int:
    return sum(len(m.chat_requests()) for m in mocks) * COST


@dataclass
class PaidFleet:
    mocks: list[MockBackend]
    replicas: list[Replica]
    redis: RedisServer
    prefix: str

    def billed(self) -> int:
        return billed(self.mocks)

    async def settled(self, **kw: Any) -> int:
        return await settled(self.redis, self.prefix, self.billed(), **kw)


StartFleet = Callable[..., Awaitable[PaidFleet]]


@pytest.fixture
def paid_fleet(own_redis: RedisServer, redis_prefix: str, tmp_path: Path,
               mock_backend: MockFactory, cluster: list[Replica],
               http: aiohttp.ClientSession) -> StartFleet:
    """Two paid mocks and three replicas on a redis-server of the test's own."""
    async def start(budget: dict[str, Any] | None = None, delay: float = 0.0) -> PaidFleet:
        mocks = await paid_mocks(mock_backend)
        for mock in mocks:
            mock.set(delay=delay)
        config = write_config(tmp_path / "nexus.toml", own_redis.url, redis_prefix, mocks,
                              budget)
        replicas = await start_cluster(cluster, config, http)
        return PaidFleet(mocks, replicas, own_redis, redis_prefix)

    return start


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=DEADLINE)) as session:
        yield session


async def test_concurrent_paid_requests_over_three_replicas_are_counted_exactly(
        paid_fleet: StartFleet, http: aiohttp.ClientSession) -> None:
    fleet = await paid_fleet()
    statuses = await fire(http, fleet.replicas, REQUESTS)
    assert statuses.count(200) == REQUESTS
    assert fleet.billed() == REQUESTS * COST
    assert await fleet.settled() == fleet.billed()


async def test_spend_stays_exact_when_redis_is_killed_and_restarted_mid_run(
        paid_fleet: StartFleet, http: aiohttp.ClientSession) -> None:
    fleet = await paid_fleet()
    wave = REQUESTS // 3
    first = asyncio.create_task(fire(http, fleet.replicas, wave))
    await until(lambda: fleet.billed() >= COST * wave // 4, within=DEADLINE)
    await asyncio.to_thread(fleet.redis.kill)          # mid-run: the first wave in flight
    statuses = await first
    statuses += await fire(http, fleet.replicas, wave)  # all of it while Redis is down
    third = asyncio.create_task(fire(http, fleet.replicas, REQUESTS - 2 * wave))
    await asyncio.to_thread(fleet.redis.start)         # AOF brings back what was written
    statuses += await third
    assert statuses.count(200) == REQUESTS  # paid traffic went on (when_stale = fail_open)
    assert fleet.billed() == REQUESTS * COST
    assert await fleet.settled() == fleet.billed()


async def test_snapshot_mode_loses_no_answered_cost_when_a_replica_is_killed(
        paid_fleet: StartFleet, http: aiohttp.ClientSession) -> None:
    fleet = await paid_fleet(delay=0.01)
    run = asyncio.create_task(fire(http, fleet.replicas, REQUESTS))
    await until(lambda: fleet.billed() >= COST * REQUESTS // 4, within=DEADLINE)
    fleet.replicas[0].kill()  # SIGKILL: its buffer, if it had one, dies with it
    statuses = await run
    answered = statuses.count(200)
    assert answered >= REQUESTS * 2 // 3  # the other two replicas served their share
    # Every answer that reached its client had its cost in Redis before its last byte:
    # the only costs that may be missing are of requests the dead replica never answered.
    total = await fleet.settled(enough=lambda total: total >= answered * COST)
    assert answered * COST <= total <= fleet.billed()


async def test_a_replica_killed_mid_run_under_strict_enforcement_undercounts_nothing(
        paid_fleet: StartFleet, http: aiohttp.ClientSession) -> None:
    budget = {"monthly_limit_usd": 1000.0, "enforcement": "strict",
              "reconcile_interval_seconds": 0.3, "reservation_margin_seconds": 1}
    fleet = await paid_fleet(budget, delay=0.05)  # the delay keeps requests in flight
    run = asyncio.create_task(fire(http, fleet.replicas, REQUESTS // 2, max_tokens=COMPLETION))
    await until(lambda: run.done() or fleet.billed() >= COST * REQUESTS // 8, within=DEADLINE)
    assert not run.done(), f"the run ended before the kill: {Counter(run.result())}"
    fleet.replicas[0].kill()
    statuses = await run
    lost = statuses.count(0) + sum(1 for s in statuses if s >= 500)
    # The dead replica's unsettled requests are counted at their estimate (>= the bill)
    # once their reservations expire (request timeout + margin 1 s) and a leader
    # reconciles: never less than what the mocks billed.
    total = await fleet.settled(enough=lambda total: total >= fleet.billed())
    assert fleet.billed() <= total <= fleet.billed() + lost * ESTIMATE


async def test_replicas_pushing_past_a_strict_limit_together_do_not_overshoot(
        paid_fleet: StartFleet, http: aiohttp.ClientSession) -> None:
    limit_micro = 300 * ESTIMATE  # room for 300 requests at their estimate
    fleet = await paid_fleet({"monthly_limit_usd": limit_micro / 1_000_000,
                              "enforcement": "strict",
                              "hard_limit_action": "warn"})  # only the reservation stops them
    statuses = await fire(http, fleet.replicas, 600, max_tokens=COMPLETION)
    assert statuses.count(503) > 0
    assert statuses.count(200) + statuses.count(503) == 600
    # Once the burst is over, requests one at a time are served until the room left is
    # less than one estimate: the refusals come at the limit, not before it. (How much
    # of it the burst itself used depends on the machine's speed: a hold whose request
    # failed is let go, perhaps after others were refused.)
    refusal = ""
    for replica in itertools.cycle(fleet.replicas):
        status, refusal = await eventually(  # a replica whose snapshot is late says so: ask again
            lambda r=replica: one_request(http, r), lambda answer: "stale" not in answer[1])
        if status != 200:
            break
    total = await fleet.settled()
    assert total == fleet.billed()
    # Estimates never fall below the bill here, so the overshoot bound is zero.
    assert limit_micro - ESTIMATE < total <= limit_micro, refusal


async def one_request(http: aiohttp.ClientSession, replica: Replica) -> tuple[int, str]:
    """(status, the refusal's message) of one paid request."""
    async with http.post(replica.url + "/v1/chat/completions",
                         json=chat("paid-model", max_tokens=COMPLETION)) as response:
        body = await response.text()
        return response.status, "" if response.status == 200 else body


async def test_a_killed_leader_is_replaced_within_the_lease_ttl_plus_a_renewal(
        paid_fleet: StartFleet, http: aiohttp.ClientSession) -> None:
    replicas = (await paid_fleet()).replicas
    await eventually(lambda: leaders(http, replicas), lambda found: len(found) == 1)
    (leader,) = await leaders(http, replicas)
    old_epoch = (await leader.health(http))["replica"]["epoch"]
    leader.kill()
    others = [r for r in replicas if r is not leader]
    # lease 1.5 s, renewal period 0.5 s (+-20%); 2 s of slack for process start-up noise
    found = await eventually(lambda: leaders(http, others), lambda found: len(found) == 1,
                              within=1.5 + 0.6 + 2.0)
    assert (await found[0].health(http))["replica"]["epoch"] > old_epoch


async def test_a_paused_leader_that_wakes_up_has_its_writes_refused(
        paid_fleet: StartFleet, http: aiohttp.ClientSession) -> None:
    budget = {"monthly_limit_usd": 1000.0, "reconcile_interval_seconds": 0.2}
    fleet = await paid_fleet(budget)
    await eventually(lambda: leaders(http, fleet.replicas), lambda found: len(found) == 1)
    (old,) = await leaders(http, fleet.replicas)
    pause(old)  # frozen past its lease, with a reconciliation due the moment it wakes
    others = [r for r in fleet.replicas if r is not old]
    (new,) = await eventually(lambda: leaders(http, others), lambda found: len(found) == 1)
    client = redis.Redis.from_url(fleet.redis.url, decode_responses=True)
    summary = Keys(fleet.prefix).budget_status(month_of())
    try:
        await eventually(lambda: summary_writer(client, summary, others),
                          lambda found: [r.replica_id for r in found] == [new.replica_id])
        resume(old)
        await eventually(lambda: leaders(http, fleet.replicas),
                          lambda found: found == [new])  # the old one learned it lost
        assert "no longer leads" in old.log.read_text()
        # Sampled over several of the new leader's 0.2 s rounds (a check, not a wait):
        # whatever the old leader tried on waking was refused by the epoch.
        for _ in range(5):
            assert await client.hget(summary, "leader") == new.replica_id
            assert int(await client.hget(summary, "epoch") or 0) == \
                (await new.health(http))["replica"]["epoch"]
            await asyncio.sleep(0.2)
    finally:
        resume(old)
        await client.aclose()


async def summary_writer(client: redis.Redis, key: str,
                         replicas: list[Replica]) -> list[Replica]:
    writer = await client.hget(key, "leader")
    return [r for r in replicas if r.replica_id == writer]


async def leaders(http: aiohttp.ClientSession, replicas: list[Replica]) -> list[Replica]:
    healths = await asyncio.gather(*(r.health(http) for r in replicas))
    return [r for r, h in zip(replicas, healths, strict=True) if h["replica"]["leader"]]
