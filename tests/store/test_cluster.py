"""Nexus on a Redis Cluster of three masters: money and rate limits exact across two
replicas, and scripts that heal after every node forgot them."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import pytest

from nexus.config.schema import KeyConfig, TeamConfig
from nexus.store.keys import Keys
from nexus.store.redis_store import RedisStore
from tests.support.helpers import GatewayFactory, MockFactory, RunningGateway, backend, make_config
from tests.support.mock_backend import MockBackend
from tests.support.redis_topologies import RedisClusterServers

PRICE = {"input": 1.0, "output": 2.0}  # per million: 1000 in + 500 out = 2000 micro-USD
COST = 2000


def cluster_config(cluster: RedisClusterServers, prefix: str, replica: str,
                   paid: MockBackend, **sections: Any) -> Any:
    return make_config(
        [backend(paid, models=["gpt-x"], type="openai", api_key_env="OAI",
                 max_concurrent=1000, pricing={"gpt-x": dict(PRICE)})],
        redis={"mode": "cluster", "nodes": cluster.addresses, "prefix": prefix,
               "snapshot_interval_seconds": 0.2},
        fleet={"replica_id": replica}, **sections)


@pytest.fixture
async def pair(redis_cluster: RedisClusterServers, redis_prefix: str,
               mock_backend: MockFactory, gateway: GatewayFactory,
               ) -> tuple[list[RunningGateway], MockBackend]:
    paid = await mock_backend("paid", models=["gpt-x"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500)
    keys = [msgspec.convert({"name": "alice", "secret_env": "ALICE", "rpm": 30,
                             "team": "research"}, KeyConfig),
            msgspec.convert({"name": "free", "secret_env": "FREE"}, KeyConfig)]
    env = {"OAI": "sk", "ALICE": "alice-secret", "FREE": "free-secret"}
    replicas = []
    for name in ("cluster-a", "cluster-b"):
        config = cluster_config(redis_cluster, redis_prefix, name, paid)
        config.keys = keys
        config.teams = [msgspec.convert({"name": "research", "rpm": 1000}, TeamConfig)]
        replicas.append(await gateway(config, env))
    return replicas, paid


async def fire(http: aiohttp.ClientSession, replicas: list[RunningGateway], secret: str,
               count: int) -> list[int]:
    async def one(i: int) -> int:
        async with http.post(replicas[i % len(replicas)].url + "/v1/chat/completions",
                             headers={"Authorization": f"Bearer {secret}"}, json={
                                 "model": "gpt-x", "messages": [{"role": "user",
                                                                  "content": "hi"}]}) as r:
            await r.read()
            return r.status

    return list(await asyncio.gather(*(one(i) for i in range(count))))


async def total(replica: RunningGateway) -> int:
    store = replica.gateway.store
    assert isinstance(store, RedisStore)
    await store.sync()
    return (await store.breakdown(store.budget_view().month)).total_micro_usd


async def test_two_replicas_on_a_cluster_count_every_paid_request_once(
        pair: tuple[list[RunningGateway], MockBackend], http: aiohttp.ClientSession) -> None:
    replicas, paid = pair
    statuses = await fire(http, replicas, "free-secret", 300)
    assert statuses == [200] * 300
    for replica in replicas:
        store = replica.gateway.store
        assert isinstance(store, RedisStore)
        await store.flush()
    assert await total(replicas[0]) == len(paid.chat_requests()) * COST == 300 * COST


async def test_rate_limits_are_exact_across_replicas_on_a_cluster(
        pair: tuple[list[RunningGateway], MockBackend], http: aiohttp.ClientSession) -> None:
    replicas, _ = pair
    statuses = await fire(http, replicas, "alice-secret", 100)  # rpm 30, all at once
    assert statuses.count(200) == 30
    assert statuses.count(429) == 70


async def test_scripts_heal_after_every_node_forgot_them(
        pair: tuple[list[RunningGateway], MockBackend], http: aiohttp.ClientSession,
        redis_cluster: RedisClusterServers) -> None:
    replicas, _ = pair
    assert await fire(http, replicas, "alice-secret", 4) == [200] * 4
    redis_cluster.flush_scripts()  # as after a restart or failover of every node
    assert await fire(http, replicas, "alice-secret", 4) == [200] * 4  # rate.lua again
    for replica in replicas:
        store = replica.gateway.store
        assert isinstance(store, RedisStore)
        await store.flush()  # spend.lua again
        assert store.status().pending_spend_records == 0
    assert await total(replicas[0]) == 8 * COST


async def test_a_resharded_control_slot_is_followed(
        pair: tuple[list[RunningGateway], MockBackend], http: aiohttp.ClientSession,
        redis_cluster: RedisClusterServers, redis_prefix: str) -> None:
    from redis.crc import key_slot

    replicas, _ = pair
    assert await fire(http, replicas, "free-secret", 6) == [200] * 6
    for replica in replicas:
        store = replica.gateway.store
        assert isinstance(store, RedisStore)
        await store.flush()
    redis_cluster.move_slot(key_slot(Keys(redis_prefix).tag.encode()))  # money, leases
    assert await fire(http, replicas, "free-secret", 6) == [200] * 6
    for replica in replicas:  # MOVED: the client re-reads the slot map and goes there
        store = replica.gateway.store
        assert isinstance(store, RedisStore)
        await store.flush()
        assert store.status().pending_spend_records == 0
    assert await total(replicas[0]) == 12 * COST


def test_every_scripts_keys_share_a_hash_slot() -> None:
    """The names keys.py builds: a month's ledger and the control keys in one slot,
    a key and its team's counters in one, a replica's figures in one."""
    from redis.crc import key_slot

    keys = Keys("nexus")
    control = {key_slot(k.encode()) for k in (
        keys.spend_total("2026-12"), keys.spend_by_day("2026-12"), keys.spend_counted("r1"),
        keys.reservations("2026-12"), keys.leader, keys.leader_epoch,
        keys.budget_status("2026-12"), keys.health, keys.tenants_version)}
    assert len(control) == 1
    team = {key_slot(keys.rate_requests(s, "team:research").encode())
            for s in ("key:alice", "key:bob", "team:research")}
    assert len(team) == 1
    assert key_slot(keys.rate_tokens("key:solo", "key:solo").encode()) != team.pop()
    assert len({key_slot(keys.replica_metrics("a").encode()),
                key_slot(keys.replica_card("a").encode())}) == 1
