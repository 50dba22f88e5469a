"""Tenants through HTTP on one replica: keys, teams, the admin API, models, privacy,
rate limits and budgets, on the in-process store and on a real redis-server."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from typing import Any

import aiohttp
import pytest

from nexus.tenants.model import sha256_of
from nexus.tenants.table import counted_as
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
    until,
)
from tests.support.redis_server import RedisServer

ADMIN = "admin-secret"
ENV = {"NEXUS_ADMIN": ADMIN, "ALICE": "alice-secret", "OAI": "sk-test"}
PRICE = {"input": 1.0, "output": 2.0}  # USD per million tokens


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def ask(http: aiohttp.ClientSession, gw: RunningGateway, secret: str | None,
              body: dict[str, Any] | None = None,
              **headers: str) -> tuple[int, dict[str, str], Any]:
    sent = {**(bearer(secret) if secret else {}), **headers}
    async with http.post(gw.url + "/v1/chat/completions", json=body or chat("llm"),
                         headers=sent) as r:
        return r.status, dict(r.headers), await r.json()


async def admin(http: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str,
                body: dict[str, Any] | None = None, secret: str = ADMIN) -> tuple[int, Any]:
    async with http.request(method, gw.url + path, json=body, headers=bearer(secret)) as r:
        return r.status, await r.json()


def fleet_config(local: Any, paid: Any | None = None, keys: list[dict[str, Any]] | None = None,
                 teams: list[dict[str, Any]] | None = None, **sections: Any) -> Any:
    backends = [backend(local, models=["llm"], zone="restricted")]
    if paid is not None:
        backends.append(backend(paid, models=["llm", "gpt-4o"], type="openai",
                                api_key_env="OAI", priority=100,
                                pricing={"llm": dict(PRICE), "gpt-4o": dict(PRICE)}))
    config = make_config(backends, server={"admin_key_env": "NEXUS_ADMIN"}, **sections)
    config.keys = [msgspec_key(k) for k in keys or []]
    config.teams = [msgspec_team(t) for t in teams or []]
    return config


def msgspec_key(raw: dict[str, Any]) -> Any:
    import msgspec

    from nexus.config.schema import KeyConfig
    return msgspec.convert(raw, KeyConfig)


def msgspec_team(raw: dict[str, Any]) -> Any:
    import msgspec

    from nexus.config.schema import TeamConfig
    return msgspec.convert(raw, TeamConfig)


@pytest.fixture
async def pair(mock_backend: MockFactory) -> tuple[Any, Any]:
    local = await mock_backend("local", models=["llm"])
    paid = await mock_backend("paid", models=["llm", "gpt-4o"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500)  # 1000 + 1000 = 2000 micro-USD
    return local, paid


async def test_a_config_key_authenticates_by_bearer_or_x_api_key(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, _ = pair
    gw = await gateway(fleet_config(local, keys=[{"name": "alice", "secret_env": "ALICE"}]),
                       ENV)
    assert (await ask(http, gw, "alice-secret"))[0] == 200
    assert (await ask(http, gw, None, **{"x-api-key": "alice-secret"}))[0] == 200
    status, _, answer = await ask(http, gw, "wrong")
    assert (status, answer["error"]["code"]) == (401, "invalid_api_key")
    assert (await ask(http, gw, None))[0] == 401
    assert gw.gateway.stats.key_requests["alice"] == 2


async def test_a_key_past_its_expiry_gets_401(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, _ = pair
    gw = await gateway(fleet_config(local, keys=[
        {"name": "old", "secret_sha256": sha256_of("old-secret"), "expires_at": "2020-01-01"},
        {"name": "new", "secret_sha256": sha256_of("new-secret"), "expires_at": "2999-01-01"}]),
        ENV)
    assert (await ask(http, gw, "old-secret"))[0] == 401
    assert (await ask(http, gw, "new-secret"))[0] == 200


async def test_a_key_may_use_only_its_models(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, paid = pair
    gw = await gateway(fleet_config(local, paid, keys=[
        {"name": "alice", "secret_env": "ALICE", "models": ["ll*"]}]), ENV)
    assert (await ask(http, gw, "alice-secret"))[0] == 200
    sent = len(paid.chat_requests())
    status, _, answer = await ask(http, gw, "alice-secret", chat("gpt-4o"))
    assert status == 403
    assert answer["error"]["code"] == "model_not_allowed"
    assert len(paid.chat_requests()) == sent


async def test_a_restricted_key_never_reaches_an_open_zone(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, paid = pair  # the paid (open) backend has the higher priority
    gw = await gateway(fleet_config(local, paid, keys=[
        {"name": "alice", "secret_env": "ALICE", "privacy": "restricted"}]), ENV)
    for _ in range(5):
        status, headers, _ = await ask(http, gw, "alice-secret",
                                       **{"X-Nexus-Privacy": "unrestricted"})
        assert (status, headers["X-Nexus-Backend"]) == (200, "local")
    assert paid.chat_requests() == []


async def test_the_admin_api_makes_keys_that_work_and_shows_no_secret(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    local, _ = pair
    gw = await gateway(fleet_config(local), ENV)
    with caplog.at_level(logging.DEBUG):
        status, made = await admin(http, gw, "POST", "/admin/teams", {"name": "research",
                                                                      "rpm": 100})
        assert status == 201
        status, made = await admin(http, gw, "POST", "/admin/keys", {
            "name": "bob", "team": "research", "rpm": 10, "models": ["llm"]})
        assert status == 201
        secret = made["secret"]
        assert (await ask(http, gw, secret))[0] == 200
        listed = json.dumps([await admin(http, gw, "GET", "/admin/keys"),
                             await admin(http, gw, "GET", "/admin/keys/bob"),
                             await admin(http, gw, "GET", "/admin/teams/research")])
    assert secret not in listed
    assert sha256_of(secret) not in listed
    assert secret not in caplog.text
    shown = (await admin(http, gw, "GET", "/admin/keys/bob"))[1]
    assert (shown["team"], shown["rpm"], shown["this_minute"]["requests"]) == ("research", 10, 1)
    assert (await admin(http, gw, "DELETE", "/admin/keys/bob"))[0] == 200
    assert (await ask(http, gw, secret))[0] == 401  # revoked


async def test_the_admin_api_takes_only_the_admin_key(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, _ = pair
    gw = await gateway(fleet_config(local, keys=[{"name": "alice", "secret_env": "ALICE"}]),
                       ENV)
    assert (await admin(http, gw, "GET", "/admin/keys", secret="alice-secret"))[0] == 401
    assert (await admin(http, gw, "GET", "/admin/keys"))[0] == 200
    assert (await ask(http, gw, ADMIN))[0] == 401  # nor is the admin key a client key
    status, answer = await admin(http, gw, "POST", "/admin/keys", {"name": "x", "team": "no"})
    assert (status, answer["error"]["param"]) == (400, "team")
    status, _ = await admin(http, gw, "DELETE", "/admin/keys/alice")
    assert status == 409  # declared in the config: removed there


async def test_rpm_over_a_key_refuses_with_429_retry_after_and_ratelimit_headers(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, _ = pair
    gw = await gateway(fleet_config(local, keys=[{"name": "alice", "secret_env": "ALICE",
                                                  "rpm": 3}]), ENV)
    answers = [await ask(http, gw, "alice-secret") for _ in range(5)]
    assert [a[0] for a in answers] == [200, 200, 200, 429, 429]
    ok, refused = answers[0][1], answers[3]
    assert ok["x-ratelimit-limit-requests"] == "3"
    assert ok["x-ratelimit-remaining-requests"] == "2"
    assert refused[2]["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused[1]["Retry-After"]) <= 60
    assert refused[1]["x-ratelimit-remaining-requests"] == "0"


async def test_a_teams_limit_is_shared_by_its_keys(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, _ = pair
    gw = await gateway(fleet_config(local, teams=[{"name": "t", "rpm": 4}], keys=[
        {"name": "a", "secret_sha256": sha256_of("a"), "team": "t"},
        {"name": "b", "secret_sha256": sha256_of("b"), "team": "t"}]), ENV)
    statuses = [(await ask(http, gw, secret))[0] for secret in "abababab"]
    assert statuses.count(200) == 4
    assert statuses.count(429) == 4


async def test_tpm_counts_the_estimate_then_the_usage(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, _ = pair  # the mock reports a few tokens; each estimate is 4 in + 100 out
    gw = await gateway(fleet_config(local, keys=[{"name": "alice", "secret_env": "ALICE",
                                                  "tpm": 250}]), ENV)
    statuses = [(await ask(http, gw, "alice-secret", chat("llm", max_tokens=100)))[0]
                for _ in range(6)]
    # Settled at their usage (a few tokens each), the first requests leave room for more
    # than 250 // 104 = 2 requests' estimates.
    assert statuses[:3] == [200, 200, 200]
    used = await gw.gateway.store.rate_usage(counted_as("key", "alice"))
    assert used[0] == statuses.count(200)
    assert used[1] < statuses.count(200) * 104


async def test_a_key_out_of_budget_is_served_by_a_free_backend_then_refused(
        pair: tuple[Any, Any], gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, paid = pair  # each paid answer costs 2000 micro-USD
    gw = await gateway(fleet_config(local, paid, keys=[
        {"name": "alice", "secret_env": "ALICE", "monthly_budget_usd": 0.005}]), ENV)
    backends = [(await ask(http, gw, "alice-secret", chat("llm", max_tokens=500)))[1]
                .get("X-Nexus-Backend") for _ in range(4)]
    assert backends[:2] == ["paid", "paid"]
    assert set(backends[2:]) == {"local"}  # out of budget: the free backend serves it
    status, _, answer = await ask(http, gw, "alice-secret", chat("gpt-4o", max_tokens=500))
    assert status == 429
    assert answer["error"]["type"] == "insufficient_quota"
    spend = (await gw.gateway.store.breakdown(gw.gateway.store.budget_view().month))
    assert spend.by_key == {"alice": 4000}
    assert spend.by_key["alice"] <= 5000


@pytest.fixture
async def redis_gateway(own_redis: RedisServer, redis_prefix: str, pair: tuple[Any, Any],
                        gateway: GatewayFactory) -> RunningGateway:
    local, paid = pair
    config = fleet_config(local, paid, redis={"url": own_redis.url, "prefix": redis_prefix,
                                              "snapshot_interval_seconds": 0.05,
                                              "timeout_seconds": 0.3})
    return await gateway(config, ENV)


async def test_no_secret_is_ever_written_to_redis(
        redis_gateway: RunningGateway, own_redis: RedisServer,
        http: aiohttp.ClientSession) -> None:
    status, made = await admin(http, redis_gateway, "POST", "/admin/keys",
                               {"name": "carol", "rpm": 5, "monthly_budget_usd": 1})
    assert status == 201
    assert (await ask(http, redis_gateway, made["secret"], chat("gpt-4o")))[0] == 200
    client = own_redis.client()
    dump = []
    for key in client.scan_iter("*"):
        kind = client.type(key)
        dump.append(str({"string": client.get, "hash": client.hgetall,
                         "zset": lambda k: client.zrange(k, 0, -1),
                         "set": client.smembers}.get(kind, lambda k: "")(key)))
    assert any("carol" in d for d in dump)
    assert not any(made["secret"] in d for d in dump)


async def test_a_frozen_redis_lets_limited_keys_follow_when_stale_without_waiting(
        own_redis: RedisServer, redis_prefix: str, pair: tuple[Any, Any],
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local, _ = pair
    config = fleet_config(local, keys=[
        {"name": "open", "secret_sha256": sha256_of("open"), "rpm": 1000},
        {"name": "closed", "secret_sha256": sha256_of("closed"), "rpm": 1000,
         "when_stale": "fail_closed"}],
        redis={"url": own_redis.url, "prefix": redis_prefix, "timeout_seconds": 0.3,
               "snapshot_interval_seconds": 0.05})
    gw = await gateway(config, ENV)
    store = gw.gateway.store
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        await until(lambda: store.status().circuit_open, within=30)  # the loops noticed
        refused_before = store.circuit.refused  # type: ignore[attr-defined]
        results = await asyncio.gather(*(ask(http, gw, s) for s in ["open", "closed"] * 10))
        assert [r[0] for r in results] == [200, 503] * 10
        # None of them asked the frozen Redis: the open circuit refused every ask.
        assert store.circuit.refused - refused_before == 20  # type: ignore[attr-defined]
    finally:
        own_redis.process.send_signal(signal.SIGCONT)


async def test_a_busy_keys_requests_pass_on_allowances_counted_exactly_and_in_metrics(
        redis_gateway: RunningGateway, own_redis: RedisServer, redis_prefix: str,
        http: aiohttp.ClientSession) -> None:
    from nexus.store.keys import Keys

    status, made = await admin(http, redis_gateway, "POST", "/admin/keys",
                               {"name": "busy", "rpm": 1_000_000})
    assert status == 201
    answers = []
    for _ in range(10):  # waves of 30 at once: a pace that earns blocks
        answers += await asyncio.gather(*(ask(http, redis_gateway, made["secret"])
                                          for _ in range(30)))
    assert [a[0] for a in answers] == [200] * 300
    assert all(int(a[1]["x-ratelimit-remaining-requests"]) < 1_000_000 for a in answers)
    async with http.get(redis_gateway.url + "/metrics") as r:
        metrics = await r.text()
    judged = {by: int(next(line.rsplit(" ", 1)[1] for line in metrics.splitlines()
                           if line.startswith(f'nexus_rate_checks_total{{by="{by}"}}')))
              for by in ("allowance", "store", "local_share")}
    assert sum(judged.values()) == 300
    assert judged["allowance"] > 0, judged
    await redis_gateway.stop()  # gives back what its open block did not use
    requests = Keys(redis_prefix).rate_requests("key:busy", "key:busy")
    assert own_redis.client().zcard(requests) == judged["allowance"] + judged["store"]


async def test_a_request_judged_by_the_local_share_settles_its_tokens_there() -> None:
    from nexus.config.schema import RedisConfig
    from nexus.core.errors import RateLimitExceeded
    from nexus.core.types import Requirements
    from nexus.proxy.admission import Admission
    from nexus.store.redis_store import RedisStore
    from nexus.tenants.model import KeyRecord
    from nexus.tenants.table import TenantTable
    from tests.support.redis_server import free_port

    store = RedisStore(RedisConfig(url=f"redis://127.0.0.1:{free_port()}/0", prefix="away"))
    admission = Admission(store)  # nothing listens there: every check is the local share's
    table = TenantTable([KeyRecord(name="alice", secret_sha256=sha256_of("a"), tpm=1000)])
    alice = table.by_name("alice")
    assert alice is not None
    estimate_500 = Requirements(input_tokens=10, max_output_tokens=490)
    try:
        first, _ = await admission.admit(alice, estimate_500)
        assert first is not None
        assert first.local
        with pytest.raises(RateLimitExceeded):  # 500 + 501 > 1000
            await admission.admit(alice, Requirements(input_tokens=11, max_output_tokens=490))
        admission.settle(first, 20)             # it used 20: 20 + 500 fit
        assert (await admission.admit(alice, estimate_500))[0] is not None
        assert admission.local.usage("key:alice") == (2, 520)
        assert admission.judged["local_share"] == 3
    finally:
        await store.close()
