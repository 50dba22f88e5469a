"""Redis goes away and comes back: routing goes on, spend waits, nothing counts twice."""

from __future__ import annotations

import asyncio
import signal

import aiohttp
import pytest

from nexus.budget.records import Reservation, SpendRecord
from nexus.config.schema import RedisConfig
from nexus.store.redis_store import RedisStore
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    backend,
    chat,
    make_config,
    post,
    until,
)
from tests.support.redis_server import RedisServer, free_port

MONTH = "2026-11"


def spend(request_id: str, cost: int) -> SpendRecord:
    return SpendRecord(request_id=request_id, month=MONTH, backend="cloud", model="gpt-4o",
                       cost_micro_usd=cost)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def redis_store(server_url: str, prefix: str, clock: FakeClock | None = None) -> RedisStore:
    config = RedisConfig(url=server_url, prefix=prefix, snapshot_interval_seconds=0.05,
                         stale_after_seconds=10, timeout_seconds=0.5)
    return RedisStore(config, month=lambda: MONTH, clock=clock or FakeClock())


async def test_spend_made_during_an_outage_lands_once_when_redis_returns(
        own_redis: RedisServer, redis_prefix: str) -> None:
    clock = FakeClock()
    store = redis_store(own_redis.url, redis_prefix, clock)
    await store.start()
    store.record_spend(spend("before", 100))
    await store.sync()
    await asyncio.to_thread(own_redis.kill)
    store.record_spend(spend("during-1", 20))
    store.record_spend(spend("during-2", 3))
    await until(lambda: not store.connected)
    view = store.budget_view()
    assert view.spent_micro_usd == 123  # the replica still counts what it spent
    clock.now += 11
    assert store.budget_view().stale
    await asyncio.to_thread(own_redis.start)  # AOF brings back what was written before
    await until(lambda: store.pending == 0 and store.connected)
    await store.sync()
    assert (await store.breakdown(MONTH)).total_micro_usd == 123
    assert not store.budget_view().stale
    await store.close()


async def test_a_write_sent_again_after_it_landed_counts_once(
        redis_server: RedisServer, redis_prefix: str) -> None:
    store = redis_store(redis_server.url, redis_prefix)
    await store.start()
    record = spend("timed-out", 500)
    assert await store._write_batch([record]) == [1]
    assert await store._write_batch([record]) == [0]  # the retry a timeout would cause
    assert (await store.breakdown(MONTH)).total_micro_usd == 500
    await store.close()


async def test_a_redis_that_forgot_its_scripts_heals_by_itself(
        redis_server: RedisServer, redis_prefix: str) -> None:
    store = redis_store(redis_server.url, redis_prefix)
    await store.start()
    await store.client.script_flush()
    store.record_spend(spend("after-flush", 9))
    await store.sync()
    assert (await store.breakdown(MONTH)).total_micro_usd == 9
    await store.close()


async def test_a_replica_starts_without_redis_and_says_so(redis_prefix: str) -> None:
    store = redis_store(f"redis://127.0.0.1:{free_port()}/0", redis_prefix)
    await store.start()
    status = store.status()
    assert (status.kind, status.connected, status.snapshot_age_seconds) == ("redis", False, None)
    assert status.last_error
    assert store.budget_view().stale
    await store.close(flush_seconds=0.1)


async def test_routing_to_local_backends_goes_on_while_redis_is_down(
        own_redis: RedisServer, redis_prefix: str, mock_backend: MockFactory,
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("local", models=["llm"])
    config = make_config([backend(mock)], redis={"url": own_redis.url, "prefix": redis_prefix,
                                                 "snapshot_interval_seconds": 0.05})
    gw = await gateway(config)
    await asyncio.to_thread(own_redis.kill)
    for _ in range(20):
        status, _, _ = await post(http, gw.url, chat("llm"))
        assert status == 200
    async with http.get(gw.url + "/health") as response:
        health = await response.json()
    assert health["store"]["kind"] == "redis"
    await until(lambda: not gw.gateway.store.status().connected)
    async with http.get(gw.url + "/metrics") as response:
        assert 'nexus_store_connected{kind="redis"} 0' in await response.text()
    await asyncio.to_thread(own_redis.start)
    await until(lambda: gw.gateway.store.status().connected)


async def test_a_frozen_redis_opens_the_circuit_and_strict_requests_stop_waiting(
        own_redis: RedisServer, redis_prefix: str, mock_backend: MockFactory,
        gateway: GatewayFactory, http: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    paid = await mock_backend("paid", models=["gpt-4o"])
    local = await mock_backend("local", models=["llm"])
    config = make_config(
        [backend(paid, type="openai", api_key_env="CLOUD_KEY"), backend(local)],
        redis={"url": own_redis.url, "prefix": redis_prefix, "timeout_seconds": 0.3,
               "snapshot_interval_seconds": 0.05},
        routing={"budget": {"monthly_limit_usd": 10.0, "enforcement": "strict",
                            "when_stale": "fail_closed", "hard_limit_action": "warn"}})
    gw = await gateway(config, {"CLOUD_KEY": "sk-test"})
    store = gw.gateway.store
    assert isinstance(store, RedisStore)
    asked = 0
    reserve_now = store._reserve_now

    async def counted(reservation: Reservation) -> bool:
        nonlocal asked
        asked += 1
        return await reserve_now(reservation)

    monkeypatch.setattr(store, "_reserve_now", counted)
    assert (await post(http, gw.url, chat("gpt-4o")))[0] == 200
    asked = 0
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)  # accepts connections, never answers
    try:
        statuses = [(await post(http, gw.url, chat("gpt-4o")))[0] for _ in range(12)]
        assert statuses == [503] * 12  # fail_closed: paid traffic refused, never sent
        # At most the circuit's threshold of requests waited on Redis; the rest were
        # refused without asking it (the background loops also count as failures).
        assert asked <= store.circuit.threshold
        assert store.circuit.open
        assert store.circuit.refused >= 12 - store.circuit.threshold
        assert (await post(http, gw.url, chat("llm")))[0] == 200  # local goes on
        async with http.get(gw.url + "/health") as r:
            assert (await r.json())["store"]["circuit_open"] is True
    finally:
        own_redis.process.send_signal(signal.SIGCONT)
    await until(lambda: not store.circuit.open, within=30)  # a background read closed it
    assert (await post(http, gw.url, chat("gpt-4o")))[0] == 200
    assert len(paid.chat_requests()) == 2
