"""What replicas share besides money: backend figures and the leader's health checks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from nexus.backends.health import Health
from nexus.backends.registry import Registry
from nexus.fleet.fleet import Fleet
from nexus.store.redis_store import RedisStore
from tests.support.fleet_helpers import config_for
from tests.support.helpers import eventually
from tests.support.redis_server import RedisServer

Member = Callable[[str], Fleet]


@pytest.fixture
async def member(redis_server: RedisServer, redis_prefix: str) -> AsyncIterator[Member]:
    stores: list[RedisStore] = []

    def make(replica: str) -> Fleet:
        config = config_for(redis_server.url, redis_prefix)
        assert config.redis is not None
        store = RedisStore(config.redis, replica_id=replica)
        stores.append(store)
        return Fleet(config, store, Registry.from_config(config, {}), replica)

    yield make
    for store in stores:
        await store.client.aclose()


async def test_load_and_quality_are_merged_fleet_wide_and_a_dead_replicas_share_ages_out(
        member: Member) -> None:
    a, b = member("a"), member("b")
    gpu_a, gpu_b = a.registry.get("gpu"), b.registry.get("gpu")
    assert gpu_a is not None
    assert gpu_b is not None
    gpu_a.in_flight = 5
    for _ in range(3):
        gpu_a.metrics.error()
    gpu_a.metrics.success()
    gpu_a.observe_latency(100.0)
    gpu_a.metrics.first_token(4000.0)
    gpu_b.in_flight = 2
    gpu_b.observe_latency(300.0)
    await a.publish_metrics()
    await b.sync()
    assert (gpu_b.remote_in_flight, gpu_b.fleet_in_flight) == (5, 7)
    assert gpu_b.metrics.window() == (1, 3)  # a's outcomes count in b's quality
    assert gpu_b.latency_ema_ms == 200.0     # each replica's average counts once
    assert gpu_b.metrics.ttft_ema_ms == 4000.0  # b saw no first token; a did

    # "a" dies: it stops publishing, and its figures expire (5 periods of 0.2 s).
    async def merged_in_flight() -> int:
        await b.merge_metrics()
        return gpu_b.remote_in_flight

    await eventually(merged_in_flight, lambda in_flight: in_flight == 0)
    assert gpu_b.metrics.window() == (0, 0)
    assert (gpu_b.latency_ema_ms, gpu_b.metrics.ttft_ema_ms) == (300.0, None)


async def test_followers_adopt_the_leaders_health_checks(member: Member) -> None:
    leader, follower = member("leader"), member("follower")
    await leader.leadership.step()
    assert leader.leadership.leading
    gpu = leader.registry.get("gpu")
    assert gpu is not None
    gpu.set_discovered(frozenset({"llm", "discovered-model"}))
    gpu.health.unreachable("connection refused")
    await leader.publish_health()
    await follower.sync()
    seen = follower.registry.get("gpu")
    assert seen is not None
    assert (seen.health.state, seen.health.reason) == (Health.UNHEALTHY, "connection refused")
    assert follower.registry.serving("discovered-model") == [seen]


async def test_only_the_leader_publishes_health(member: Member) -> None:
    leader, other = member("leader"), member("other")
    await leader.leadership.step()
    await other.leadership.step()
    assert not other.leadership.leading
    await other.publish_health()  # refused: not the leader
    assert await other.client.hgetall(other.keys.health) == {}
