"""Routing by what the engines report, through the gateway: a server saturated from
outside gets no traffic, the figures show in /v1/stats, /metrics and `nexus backends`,
and in a fleet the leader's readings reach every replica through Redis."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from nexus.cli.fleet import fleet_command
from nexus.cli.main import main
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    make_config,
    until,
)
from tests.support.redis_server import RedisServer

ENGINE = {"type": "llamacpp", "engine_interval_seconds": 0.1}


def read(gw: RunningGateway, name: str) -> Any:
    found = gw.gateway.registry.get(name)
    assert found is not None
    return found.state.engine


async def chat(http: aiohttp.ClientSession, gw: RunningGateway, n: int) -> str:
    body = {"model": "llm", "messages": [{"role": "user", "content": f"question {n}"}]}
    async with http.post(gw.url + "/v1/chat/completions", json=body) as r:
        assert r.status == 200
        return r.headers["X-Nexus-Backend"]


async def test_a_server_saturated_from_outside_gets_no_traffic(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    busy = await mock_backend("busy", models=["llm"], flavor="llama-server", slots=2)
    idle = await mock_backend("idle", models=["llm"], flavor="llama-server", slots=2)
    busy.engine.external = 5  # its two slots and a queue, all someone else's
    gw = await gateway(make_config([backend(busy, **ENGINE), backend(idle, **ENGINE)]))
    await until(lambda: read(gw, "busy") is not None and read(gw, "busy").running == 5)
    served = [await chat(http, gw, n) for n in range(40)]
    assert served.count("busy") == 0


async def test_the_engines_figures_show_in_stats_metrics_and_the_cli(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str]) -> None:
    gpu = await mock_backend("gpu", models=["llm"], flavor="vllm", prefix_cache=True)
    gpu.engine.external, gpu.engine.kv_usage = 3, 0.25
    gw = await gateway(make_config([backend(gpu, type="vllm", engine_interval_seconds=0.1)]))
    for _ in range(3):
        await chat(http, gw, 0)  # the same prompt: cached the second time
    await until(lambda: read(gw, "gpu") is not None and read(gw, "gpu").prefix_hits)
    async with http.get(gw.url + "/v1/stats") as r:
        stats = await r.json()
    engine = stats["backends"][0]["engine"]
    assert (engine["running"], engine["waiting"], engine["kv_usage"]) == (3, 0, 0.25)
    assert engine["fresh"] is True
    assert 0 < stats["prefix_cache_hit_rate"] < 1
    async with http.get(gw.url + "/metrics") as r:
        text = await r.text()
    assert 'nexus_engine_requests{backend="gpu",state="running"} 3' in text
    assert 'nexus_engine_kv_cache_usage{backend="gpu"} 0.25' in text
    code = await asyncio.to_thread(main, ["backends", "--url", gw.url])
    out = capsys.readouterr().out
    assert code == 0
    assert "QUEUE" in out.splitlines()[0]
    assert "3+0" in out
    assert "fleet prefix-cache hit rate" in out


async def test_the_leaders_readings_reach_every_replica_through_redis(
        own_redis: RedisServer, redis_prefix: str, mock_backend: MockFactory,
        gateway: GatewayFactory, capsys: pytest.CaptureFixture[str]) -> None:
    gpu = await mock_backend("gpu", models=["llm"], flavor="vllm")
    gpu.engine.external = 7
    config = make_config([backend(gpu, type="vllm", engine_interval_seconds=0.1)],
                         redis={"url": own_redis.url, "prefix": redis_prefix,
                                "snapshot_interval_seconds": 0.05, "timeout_seconds": 2},
                         fleet={"lease_ttl_ms": 1000})
    one, two = await gateway(config), await gateway(config)
    await until(lambda: any(g.gateway.fleet is not None and g.gateway.fleet.leadership.leading
                            for g in (one, two)), within=30)
    leader, follower = (one, two) if one.gateway.fleet.leadership.leading else (two, one)  # type: ignore[union-attr]
    await until(lambda: read(follower, "gpu") is not None and read(follower, "gpu").running == 7,
                within=30)
    assert read(follower, "gpu").fresh()
    published = own_redis.client().hgetall(f"{{{redis_prefix}}}:engine")
    assert json.loads(published["gpu"])["signals"]["running"] == 7
    assert read(leader, "gpu").running == 7
    code = await asyncio.to_thread(fleet_command, "backends", config, None, as_json=False)
    out = capsys.readouterr().out
    assert code == 0
    assert "QUEUE" in out
    assert "7+0" in out  # `nexus backends` reads the fleet's view from Redis
