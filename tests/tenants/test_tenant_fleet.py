"""Tenant limits across three replica processes sharing one redis-server: exact."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis.asyncio as redis

from nexus.budget.month import month_of
from nexus.store.keys import Keys
from nexus.tenants.model import sha256_of
from tests.support.cluster import Replica, to_toml, toml_value
from tests.support.helpers import MockFactory, chat, eventually
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.slow
ADMIN = "fleet-admin-key"
PRICE = {"input": 1.0, "output": 2.0}   # USD per million tokens
COST = -(-(1 * 1000 + 50 * 2000) // 1000)        # the paid mock's bill: 101 micro-USD
ESTIMATE = -(-(4 * 1000 + 50 * 2000) // 1000)    # the gateway's estimate: 104


def tables(kind: str, rows: list[dict[str, Any]]) -> str:
    return "".join(f"[[{kind}]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in r.items())
                   for r in rows)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                     timeout=aiohttp.ClientTimeout(total=120)) as session:
        yield session


@pytest.fixture
async def start_fleet(own_redis: RedisServer, redis_prefix: str, tmp_path: Path,
                      mock_backend: MockFactory,
                      http: aiohttp.ClientSession) -> AsyncIterator[Any]:
    replicas: list[Replica] = []

    async def start(keys: list[dict[str, Any]], teams: list[dict[str, Any]] | None = None,
                    with_local: bool = False) -> list[Replica]:
        paid = await mock_backend("paid", models=["m"], usage_prompt_tokens=1,
                                  usage_completion_tokens=50)
        backends = [{"name": "paid", "url": paid.url, "type": "generic", "models": ["m"],
                     "priority": 100, "max_concurrent": 1000, "pricing": {"m": dict(PRICE)}}]
        if with_local:
            local = await mock_backend("local", models=["m"])
            backends.append({"name": "local", "url": local.url, "type": "generic",
                             "models": ["m"], "priority": 1, "max_concurrent": 1000})
        config = tmp_path / "nexus.toml"
        config.write_text(to_toml({
            "server": {"request_timeout_seconds": 30, "admin_key_env": "NEXUS_ADMIN"},
            "redis": {"url": own_redis.url, "prefix": redis_prefix,
                      "snapshot_interval_seconds": 0.2},
            "fleet": {"lease_ttl_ms": 1500},
            "queue": {"max_size": 5000}}, backends) + tables("teams", teams or [])
            + tables("keys", keys))
        replicas.extend(Replica(config, f"t{i}", {"NEXUS_ADMIN": ADMIN}).start()
                        for i in range(3))
        await asyncio.gather(*(r.ready(http) for r in replicas))
        fleet.paid = paid  # type: ignore[attr-defined]
        return replicas

    fleet = start
    fleet.redis, fleet.prefix = own_redis, redis_prefix  # type: ignore[attr-defined]
    yield fleet
    for replica in replicas:
        replica.stop()


async def fire(http: aiohttp.ClientSession, replicas: list[Replica], secrets: list[str],
               count: int, **body: Any) -> list[tuple[int, dict[str, str], str]]:
    async def one(i: int) -> tuple[int, dict[str, str], str]:
        async with http.post(replicas[i % len(replicas)].url + "/v1/chat/completions",
                             json=chat("m", **body),
                             headers={"Authorization": f"Bearer {secrets[i % len(secrets)]}"}
                             ) as response:
            await response.read()
            return response.status, dict(response.headers), \
                response.headers.get("X-Nexus-Backend", "")

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def key(name: str, **limits: Any) -> dict[str, Any]:
    return {"name": name, "secret_sha256": sha256_of(f"{name}-secret"), **limits}


async def test_a_keys_rpm_is_exact_over_three_replicas(
        start_fleet: Any, http: aiohttp.ClientSession) -> None:
    replicas = await start_fleet([key("alice", rpm=30)])
    answers = await fire(http, replicas, ["alice-secret"], 100)
    statuses = [a[0] for a in answers]
    assert (statuses.count(200), statuses.count(429)) == (30, 70)  # not 30 per replica
    assert all(int(h["Retry-After"]) >= 1 for s, h, _ in answers if s == 429)


async def test_a_teams_rpm_is_shared_by_its_keys_over_three_replicas(
        start_fleet: Any, http: aiohttp.ClientSession) -> None:
    replicas = await start_fleet([key("a", team="t"), key("b", team="t")],
                                 teams=[{"name": "t", "rpm": 30}])
    statuses = [a[0] for a in await fire(http, replicas, ["a-secret", "b-secret"], 100)]
    assert (statuses.count(200), statuses.count(429)) == (30, 70)


async def test_a_keys_tpm_is_exact_over_three_replicas(
        start_fleet: Any, http: aiohttp.ClientSession) -> None:
    # Each request is estimated at 4 tokens in + 50 out, and the mock bills as much:
    # 1,080 tokens a minute admit exactly 20 requests, however they are spread.
    replicas = await start_fleet([key("alice", tpm=20 * 54)])
    start_fleet.paid.set(usage_prompt_tokens=4)
    answers = await fire(http, replicas, ["alice-secret"], 60, max_tokens=50)
    statuses = [a[0] for a in answers]
    assert (statuses.count(200), statuses.count(429)) == (20, 40)
    refused = next(h for s, h, _ in answers if s == 429)
    assert refused["x-ratelimit-limit-tokens"] == "1080"


async def test_a_keys_budget_holds_over_three_replicas_then_a_free_backend_serves(
        start_fleet: Any, http: aiohttp.ClientSession) -> None:
    budget = 20 * ESTIMATE  # room for 20 paid requests at their estimate
    replicas = await start_fleet([key("alice", monthly_budget_usd=budget / 1_000_000)],
                                 with_local=True)
    answers = await fire(http, replicas, ["alice-secret"], 100, max_tokens=50)
    assert [a[0] for a in answers] == [200] * 100
    served_paid = sum(1 for a in answers if a[2] == "paid")
    assert 0 < served_paid <= 20
    assert sum(1 for a in answers if a[2] == "local") == 100 - served_paid
    client = redis.Redis.from_url(start_fleet.redis.url, decode_responses=True)
    try:  # every cost is in Redis before its answer left
        spent = int(await client.hget(Keys(start_fleet.prefix).spend_by(month_of(), "key"),
                                      "alice") or 0)
    finally:
        await client.aclose()
    assert spent == len(start_fleet.paid.chat_requests()) * COST
    assert spent <= budget  # estimates never fall below the bill here: no overshoot


async def test_a_revoked_key_gets_401_on_every_replica(
        start_fleet: Any, http: aiohttp.ClientSession) -> None:
    replicas = await start_fleet([key("static")])
    admin = {"Authorization": f"Bearer {ADMIN}"}
    async with http.post(replicas[0].url + "/admin/keys", json={"name": "temp"},
                         headers=admin) as r:
        assert r.status == 201
        secret = (await r.json())["secret"]

    async def statuses() -> list[int]:
        return [a[0] for a in await fire(http, replicas, [secret], 3)]

    await eventually(statuses, lambda s: s == [200, 200, 200], within=30)  # made on one
    async with http.delete(replicas[1].url + "/admin/keys/temp", headers=admin) as r:
        assert r.status == 200  # revoked through another
    await eventually(statuses, lambda s: s == [401, 401, 401], within=30)


async def test_with_redis_frozen_each_replica_admits_its_share_without_waiting(
        start_fleet: Any, http: aiohttp.ClientSession) -> None:
    replicas = await start_fleet([key("open", rpm=30),
                                  key("closed", rpm=30, when_stale="fail_closed")])

    await eventually(lambda: _merged(http, replicas), lambda counts: counts == [3, 3, 3],
                     within=60)  # each replica knows the fleet is three strong
    process = start_fleet.redis.process
    assert process is not None
    process.send_signal(signal.SIGSTOP)
    try:
        answers = await fire(http, replicas, ["open-secret"], 60)
        closed = await fire(http, replicas, ["closed-secret"], 6)
        # By now every replica has stopped asking: its store's circuit is open.
        await eventually(lambda: asyncio.gather(*(r.health(http) for r in replicas)),
                         lambda healths: all(h["store"]["circuit_open"] for h in healths),
                         within=60)
    finally:
        process.send_signal(signal.SIGCONT)
    # fail_open: a local share of the limit, 30 / 3 replicas = 10 on each of them.
    served = [sum(1 for i, a in enumerate(answers) if a[0] == 200 and i % 3 == r)
              for r in range(3)]
    assert served == [10, 10, 10]
    assert [a[0] for a in closed] == [503] * 6  # fail_closed: refused, Retry-After
    assert all(h["Retry-After"] for _, h, _ in closed)


async def _merged(http: aiohttp.ClientSession, replicas: list[Replica]) -> list[int]:
    """How many live replicas each replica counted at its last merge (via /health)."""
    return [int((await r.health(http))["replica"].get("fleet_size", 0)) for r in replicas]


async def test_a_busy_key_over_three_replicas_is_counted_exactly_through_its_allowances(
        start_fleet: Any, http: aiohttp.ClientSession) -> None:
    # Far from its limits, each replica admits most of the key's requests from a block
    # of them it holds; stopped, each gives back what it did not use, and Redis counts
    # exactly the requests served and the tokens they used (1 in + 50 out each).
    replicas = await start_fleet([key("busy", rpm=1_000_000, tpm=1_000_000_000)])
    statuses: list[int] = []
    for _ in range(10):
        statuses += [a[0] for a in await fire(http, replicas, ["busy-secret"], 60,
                                              max_tokens=50)]
    assert statuses == [200] * 600
    judged = 0
    for replica in replicas:
        async with http.get(replica.url + "/metrics") as response:
            judged += sum(int(line.rsplit(" ", 1)[1]) for line in (await response.text())
                          .splitlines() if line.startswith('nexus_rate_checks_total{by="allow'))
    assert judged > 0, "the replicas admitted from allowances"
    for replica in replicas:
        replica.stop()
    keys, client = Keys(start_fleet.prefix), start_fleet.redis.client()
    assert client.zcard(keys.rate_requests("key:busy", "key:busy")) == 600
    assert int(client.get(keys.rate_tokens("key:busy", "key:busy"))) == 600 * 51
