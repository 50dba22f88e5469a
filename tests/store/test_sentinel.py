"""Nexus on Redis Sentinel: spend counts only once a replica has it (WAIT), so a
master SIGKILLed under load loses nothing, and a new leader takes over with a
higher epoch."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nexus.budget.records import SpendRecord
from nexus.config.schema import RedisConfig
from nexus.store.errors import StoreError
from nexus.store.redis_store import RedisStore
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    eventually,
    make_config,
)
from tests.support.mock_backend import MockBackend
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import MASTER_NAME, Sentinels

PRICE = {"input": 1.0, "output": 2.0}  # per million: 1000 in + 500 out = 2000 micro-USD
COST = 2000
REQUESTS = 2000
DEADLINE = 180  # for what a loaded machine takes long to reach


async def test_spend_waits_in_the_buffer_until_a_replica_has_it(
        own_redis: RedisServer, redis_prefix: str, tmp_path: Path) -> None:
    store = RedisStore(RedisConfig(url=own_redis.url, prefix=redis_prefix, wait_replicas=1,
                                   wait_timeout_ms=100))
    store.record_spend(SpendRecord(request_id="r1", month="2026-12", backend="b", model="m",
                                   cost_micro_usd=700))
    with pytest.raises(StoreError, match="replicas confirmed"):
        await store.flush()  # written on the master, but no replica has it: not done
    assert store.status().pending_spend_records == 1
    (tmp_path / "replica").mkdir()
    replica = RedisServer(tmp_path / "replica", appendonly=False).start()
    try:
        replica.client().execute_command("REPLICAOF", "127.0.0.1", str(own_redis.port))
        # Sent again (once the replica has synced): counted once, now confirmed by it.
        await eventually(lambda: _store_flushed(store), bool, within=DEADLINE)
        assert (await store.breakdown("2026-12")).total_micro_usd == 700
        await eventually(lambda: _replica_total(replica, store), lambda t: t == 700)
    finally:
        await store.close()
        replica.kill()


async def _replica_total(replica: RedisServer, store: RedisStore) -> int:
    return int(replica.client().get(store.keys.spend_total("2026-12")) or 0)


def sentinel_config(sentinels: Sentinels, prefix: str, replica: str,
                    paid: MockBackend) -> Any:
    return make_config(
        [backend(paid, models=["gpt-x"], type="openai", api_key_env="OAI",
                 max_concurrent=2000, pricing={"gpt-x": dict(PRICE)})],
        redis={"mode": "sentinel", "sentinels": sentinels.addresses,
               "master_name": MASTER_NAME, "prefix": prefix, "wait_replicas": 1,
               "snapshot_interval_seconds": 0.2},
        fleet={"replica_id": replica, "lease_ttl_ms": 1000},
        server={"request_timeout_seconds": 60},
        routing={"budget": {"monthly_limit_usd": 1000.0, "reconcile_interval_seconds": 0.3}})


# On a loaded machine redis-py can abandon a connection to a sentinel that timed out in
# the middle of discovering the new master; it is reclaimed (with a ResourceWarning) when
# collected. The store closes every pool it owns; collected here, such a leftover stays
# in this test instead of failing whichever test the collector happens to run in.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_master_killed_under_load_loses_no_spend_and_a_new_leader_takes_over(
        sentinels: Sentinels, redis_prefix: str, mock_backend: MockFactory,
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    paid = await mock_backend("paid", models=["gpt-x"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500, delay=0.01)
    replicas = [await gateway(sentinel_config(sentinels, redis_prefix, name, paid),
                              {"OAI": "sk"}) for name in ("sentinel-a", "sentinel-b")]
    first = await eventually(lambda: _leader_epoch(replicas), lambda e: e > 0,
                             within=DEADLINE)
    run = asyncio.create_task(_fire(http, replicas))
    await eventually(lambda: _served(paid), lambda n: n >= REQUESTS // 4, within=DEADLINE)
    sentinels.master.kill()  # SIGKILL, mid-run
    statuses = await run
    sentinels.wait_failover()
    # The promoted replica has no replica of its own: spend waits, counted in each
    # replica's view, until the old master comes back and the sentinels attach it.
    sentinels.master.start()
    assert statuses.count(200) == len(paid.chat_requests())  # every answer was billed
    for replica in replicas:  # what waited in the buffers reaches the new master
        await eventually(lambda r=replica: _flushed(r), bool, within=DEADLINE)
    billed = len(paid.chat_requests()) * COST
    assert await _total(replicas[0]) == billed  # to the micro-dollar: none lost, none twice
    # A new lease, in a higher epoch, and its leader reconciles the budget.
    epoch = await eventually(lambda: _leader_epoch(replicas), lambda e: e > first,
                             within=DEADLINE)
    await eventually(lambda: _summary(replicas[0]),  # a round after the last flush
                     lambda s: int(s.get("epoch", 0)) >= epoch
                     and int(s.get("spent_micro_usd", -1)) == billed, within=DEADLINE)
    for replica in replicas:
        await replica.stop()
    gc.collect()


async def _fire(http: aiohttp.ClientSession, replicas: list[RunningGateway]) -> list[int]:
    async def one(i: int) -> int:
        async with http.post(replicas[i % 2].url + "/v1/chat/completions", json={
                "model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}) as r:
            await r.read()
            return r.status

    return list(await asyncio.gather(*(one(i) for i in range(REQUESTS))))


async def _served(paid: MockBackend) -> int:
    return len(paid.chat_requests())


async def _leader_epoch(replicas: list[RunningGateway]) -> int:
    return max(r.gateway.fleet.leadership.epoch for r in replicas if r.gateway.fleet)


async def _flushed(replica: RunningGateway) -> bool:
    store = replica.gateway.store
    assert isinstance(store, RedisStore)
    return await _store_flushed(store)


async def _store_flushed(store: RedisStore) -> bool:
    try:
        await store.flush()
    except StoreError:
        return False
    return store.status().pending_spend_records == 0


async def _total(replica: RunningGateway) -> int:
    store = replica.gateway.store
    assert isinstance(store, RedisStore)
    return (await store.breakdown(store.budget_view().month)).total_micro_usd


async def _summary(replica: RunningGateway) -> dict[str, Any]:
    store = replica.gateway.store
    assert isinstance(store, RedisStore)
    found: dict[str, Any] = await store.client.hgetall(
        store.keys.budget_status(store.budget_view().month))
    return found
