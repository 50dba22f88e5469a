"""Pre-warm recommendations: the fleet's hourly request counts per model (written with
the batched figures, never on a request's path), read by the leader, which names a
model about to be wanted and a backend with the room to load it; in "auto" the
leader loads it through the lifecycle operations."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import msgspec

from nexus.fleet.prewarm import Published, Recommendation, signals
from nexus.store.base import SpendLedger
from nexus.store.keys import Keys
from tests.fleet.test_placement import call, fleet
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    chat,
    eventually,
    until,
)
from tests.support.redis_server import RedisServer

NOW_HOUR = 490_000  # a fixed hour (unix hours): the history is laid out around it
NOW = NOW_HOUR * 3600 + 1800.0


def rising(base: int = 2, recent: int = 20) -> dict[int, int]:
    """`base` an hour for a day, then `recent` an hour for the last 3 hours."""
    hourly = {NOW_HOUR - h: base for h in range(4, 28)}
    hourly.update({NOW_HOUR - h: recent for h in (1, 2, 3)})
    return hourly


def seed(ledger: SpendLedger, model: str, hourly: dict[int, int]) -> None:
    for hour, requests in hourly.items():
        for _ in range(requests):
            ledger.count_request(model, hour)


def fixed_clock(*replicas: RunningGateway) -> None:
    for replica in replicas:
        replica.gateway.prewarm.clock = lambda: NOW


# -- the signals, on their own ---------------------------------------------------------------
def test_rising_demand_is_seen_with_its_numbers_in_words() -> None:
    [(signal, confidence, why)] = signals(rising(), NOW_HOUR)
    assert signal == "rising"
    assert 0.5 < confidence <= 0.95
    assert "20 requests/hour over the last 3 hours, 10.0x" in why


def test_a_daily_peak_ahead_is_seen_on_most_days_of_the_week() -> None:
    peak_hour = NOW_HOUR + 1
    hourly = {NOW_HOUR - h: 1 for h in range(1, 169)}
    for day in range(1, 6):  # 5 of the last 7 days
        hourly[peak_hour - 24 * day] = 40
    found = {s[0]: s for s in signals(hourly, NOW_HOUR)}
    assert set(found) == {"daily_peak"}
    assert f"{peak_hour % 24:02d}:00 UTC (in 1 h): on 5 of the last 7 days" in \
        found["daily_peak"][2]
    one_day = {NOW_HOUR - h: 1 for h in range(1, 169)} | {peak_hour - 24: 40}
    assert signals(one_day, NOW_HOUR) == []  # one busy afternoon is not a pattern


def test_sustained_growth_is_seen_week_on_week() -> None:
    hourly = {NOW_HOUR - h: 6 for h in range(169, 337)}
    hourly.update({NOW_HOUR - h: 10 for h in range(1, 169)})
    [(signal, _, why)] = signals(hourly, NOW_HOUR)
    assert signal == "growth"
    assert "+67 %" in why


def test_flat_thin_or_unfinished_demand_recommends_nothing() -> None:
    flat = {NOW_HOUR - h: 10 for h in range(1, 337)}
    assert signals(flat, NOW_HOUR) == []
    thin = rising(base=0, recent=3)  # from nothing to 3 an hour: not worth a load
    assert signals(thin, NOW_HOUR) == []
    partial = {NOW_HOUR: 500}  # the hour under way is not read: it is not over
    assert signals(partial, NOW_HOUR) == []


# -- through a running gateway ---------------------------------------------------------------
async def test_a_model_only_a_cloud_api_serves_is_never_recommended(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", models=["other"])
    cloud = await mock_backend("cloud", models=["gpt-4o"])
    (gw,) = await fleet(gateway, None, (ollama, {"type": "ollama"}),
                        (cloud, {"type": "openai", "api_key_env": "OAI",
                                 "models": ["gpt-4o"]}), replicas=1)
    fixed_clock(gw)
    seed(gw.gateway.store, "gpt-4o", rising())
    seed(gw.gateway.store, "qwen3:8b", rising())
    recs = await gw.gateway.prewarm.run_once()
    assert [r.model for r in recs] == ["qwen3:8b"]  # gpt-4o's demand is the cloud's


async def test_one_replica_recommends_a_backend_that_can_load_it_and_only_advises(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", models=["other"])
    plain = await mock_backend("plain", models=["other"])  # generic: cannot load
    (gw,) = await fleet(gateway, None, (ollama, {"type": "ollama"}), (plain, {}),
                        replicas=1)
    fixed_clock(gw)
    seed(gw.gateway.store, "qwen3:8b", rising())
    seed(gw.gateway.store, "steady", {NOW_HOUR - h: 10 for h in range(1, 337)})
    await gw.gateway.prewarm.run_once()
    status, answer = await call(http, gw, "GET", "/v1/fleet/recommendations")
    assert status == 200, answer
    assert answer["mode"] == "advice"
    [rec] = answer["recommendations"]
    assert (rec["model"], rec["backends"], rec["signal"]) == ("qwen3:8b", ["gpu"], "rising")
    assert "gpu can load it and has no copy loaded" in rec["reasoning"]
    assert rec["expires_at"] > NOW
    _, ops = await call(http, gw, "GET", "/v1/models/operations")
    assert ops["data"] == []  # advice only: nothing was loaded


async def test_the_leader_computes_and_every_replica_answers_from_redis(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        redis_server: RedisServer, redis_prefix: str) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", models=["other"])
    one, two = await fleet(gateway, {"url": redis_server.url, "prefix": redis_prefix},
                           (ollama, {"type": "ollama"}))
    fixed_clock(one, two)
    seed(one.gateway.store, "qwen3:8b", rising())  # counted on one replica...
    await one.gateway.store.sync()  # ...and written with its next batch
    stored = redis_server.client().hgetall(f"{{{redis_prefix}}}:demand:{NOW_HOUR - 1}")
    assert stored == {"qwen3:8b": "20"}  # readable with redis-cli
    assert redis_server.client().ttl(f"{{{redis_prefix}}}:demand:{NOW_HOUR - 1}") > 0
    await until(lambda: one.gateway.fleet.leadership.leading
                or two.gateway.fleet.leadership.leading, within=30)
    leader, other = (one, two) if one.gateway.fleet.leadership.leading else (two, one)
    assert await other.gateway.prewarm.run_once() == []  # only the leader computes
    assert [r.model for r in await leader.gateway.prewarm.run_once()] == ["qwen3:8b"]
    for replica in (other, leader):
        status, answer = await call(http, replica, "GET", "/v1/fleet/recommendations")
        assert status == 200
        assert answer["by"] == leader.gateway.replica_id
        assert [r["model"] for r in answer["recommendations"]] == ["qwen3:8b"]
    # A leader deposed while it was paused writes nothing: the epoch fences it.
    redis_server.client().incr(Keys(redis_prefix).leader_epoch)
    forged = Published(recommendations=[Recommendation(
        model="forged", backends=["gpu"], confidence=1.0, reasoning="stale", signal="rising",
        expires_at=NOW + 3600)], computed_at=NOW, by=leader.gateway.replica_id, mode="auto")
    await leader.gateway.fleet.publish_recommendations(msgspec.json.encode(forged))
    _, answer = await call(http, other, "GET", "/v1/fleet/recommendations")
    assert "forged" not in [r["model"] for r in answer["recommendations"]]


async def test_served_requests_are_counted_per_model_and_hour(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        redis_server: RedisServer, redis_prefix: str) -> None:
    mock = await mock_backend("gpu")
    for redis in (None, {"url": redis_server.url, "prefix": redis_prefix}):
        (gw,) = await fleet(gateway, redis, (mock, {}), replicas=1)
        for _ in range(3):
            async with http.post(gw.url + "/v1/chat/completions", json=chat()) as r:
                assert r.status == 200
        if redis is not None:
            await gw.gateway.store.sync()
        now_hour = int(time.time()) // 3600  # this hour, or the one before if it turned
        history = await gw.gateway.store.demand(now_hour - 1, now_hour)
        assert sum(h.get("mock-model", 0) for h in history.values()) == 3
        await gw.stop()


def engine_read(gw: RunningGateway, name: str) -> bool:
    engine = gw.gateway.registry.get(name).state.engine
    return engine is not None and engine.vram_bytes is not None


async def test_auto_mode_loads_the_recommendation_once(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", models=["other"])
    (gw,) = await fleet(gateway, None, (ollama, {"type": "ollama", "vram_gb": 24,
                                                 "engine_interval_seconds": 0.05}),
                        replicas=1, fleet={"prewarm": "auto"})
    fixed_clock(gw)
    seed(gw.gateway.store, "qwen3:8b", rising())
    await until(lambda: engine_read(gw, "gpu"), within=30)
    [rec] = await gw.gateway.prewarm.run_once()
    assert "gpu holds 4.0 of 24 GB; qwen3:8b's size is unknown, leaving 83% free" in \
        rec.reasoning

    async def operations() -> list[dict[str, Any]]:
        return list((await call(http, gw, "GET", "/v1/models/operations"))[1]["data"])

    [op] = await eventually(operations, lambda ops: ops and ops[0]["state"] != "running",
                            within=30)
    assert (op["kind"], op["model"], op["backend"], op["state"]) == \
        ("load", "qwen3:8b", "gpu", "done")
    assert "qwen3:8b" in ollama.behaviour.loaded
    def reported() -> bool:  # Ollama's /api/ps, read by the engine scraper
        engine = gw.gateway.registry.get("gpu").state.engine
        return engine is not None and "qwen3:8b" in (engine.loaded or ())

    await until(reported, within=30)
    assert await gw.gateway.prewarm.run_once() == []  # loaded now: not again
    assert len(await operations()) == 1


async def test_a_backend_without_the_headroom_is_not_a_target(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    full = await mock_backend("full", flavor="vllm", models=["base"])
    roomy = await mock_backend("roomy", flavor="vllm", models=["base"])
    full.engine.kv_usage, roomy.engine.kv_usage = 0.95, 0.10
    fields = {"type": "vllm", "engine_interval_seconds": 0.05}
    (gw,) = await fleet(gateway, None, (full, fields), (roomy, fields), replicas=1,
                        fleet={"prewarm_headroom_percent": 20})
    fixed_clock(gw)

    def read(name: str) -> float | None:
        engine = gw.gateway.registry.get(name).state.engine
        return None if engine is None else engine.kv_usage

    await until(lambda: read("full") == 0.95 and read("roomy") == 0.10, within=30)
    seed(gw.gateway.store, "sql-lora", rising())
    [rec] = await gw.gateway.prewarm.run_once()
    assert rec.backends == ["roomy"]
    roomy.engine.kv_usage = 0.9
    await until(lambda: read("roomy") == 0.9, within=30)
    assert await gw.gateway.prewarm.run_once() == []  # no room anywhere: no advice


async def test_auto_mode_loads_only_where_the_room_is_known_and_enough(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    """A load that does not fit makes Ollama evict a model in use: "auto" loads only
    where the config's vram_gb and /api/ps show the room, with the model's size as the
    fleet has seen it; advice still names a backend whose room is unknown."""
    fast = {"type": "ollama", "engine_interval_seconds": 0.05}
    holder = await mock_backend("holder", flavor="ollama", models=["qwen3:8b"],
                                model_gb={"qwen3:8b": 5.0})
    small = await mock_backend("small", flavor="ollama", models=["other"])  # 4 of 8 GB
    unknown = await mock_backend("unknown", flavor="ollama", models=["other"])
    (gw,) = await fleet(gateway, None, (holder, {**fast, "vram_gb": 48}),
                        (small, {**fast, "vram_gb": 8}), (unknown, fast), replicas=1,
                        fleet={"prewarm": "auto", "prewarm_headroom_percent": 20})
    fixed_clock(gw)
    seed(gw.gateway.store, "qwen3:8b", rising())
    await until(lambda: all(engine_read(gw, n) for n in ("holder", "small", "unknown")),
                within=30)
    [rec] = await gw.gateway.prewarm.run_once()
    assert rec.backends == ["unknown"]  # small: 4 + 5 GB of 8 leaves no headroom
    assert "the room on unknown is unknown (no vram_gb" in rec.reasoning
    _, ops = await call(http, gw, "GET", "/v1/models/operations")
    assert ops["data"] == []  # nowhere known to have the room: nothing loaded
    small.set(loaded=[])  # small's model went away: 5 of 8 GB would leave 38 %
    await until(lambda: not gw.gateway.registry.get("small").state.engine.vram_bytes,
                within=30)
    [rec] = await gw.gateway.prewarm.run_once()
    assert rec.backends == ["small", "unknown"]
    assert "small holds 0.0 of 8 GB; qwen3:8b takes about 5.0 GB (loaded on holder), " \
        "leaving 38% free" in rec.reasoning
    _, ops = await call(http, gw, "GET", "/v1/models/operations")
    assert [(op["model"], op["backend"]) for op in ops["data"]] == [("qwen3:8b", "small")]


async def test_before_the_fleet_has_loaded_a_model_its_size_on_disk_counts(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", models=["other", "qwen3:8b"],
                                loaded=["other"], model_gb={"qwen3:8b": 6.0})
    (gw,) = await fleet(gateway, None, (ollama, {"type": "ollama", "vram_gb": 24,
                                                 "engine_interval_seconds": 0.05}),
                        replicas=1)
    fixed_clock(gw)
    seed(gw.gateway.store, "qwen3:8b", rising())
    await until(lambda: engine_read(gw, "gpu"), within=30)
    [rec] = await gw.gateway.prewarm.run_once()
    assert "gpu holds 4.0 of 24 GB; qwen3:8b takes about 6.0 GB (its size on disk), " \
        "leaving 58% free" in rec.reasoning
