"""The dashboard's data and its door, over HTTP: what the page is given, and to whom."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec

from nexus.budget.month import day_of
from nexus.config.schema import KeyConfig
from nexus.core.errors import ModelNotFound, RateLimitExceeded
from nexus.proxy.call import Call
from nexus.proxy.feed import RECENT, Feed
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    backend,
    eventually,
    make_config,
)

PRICE = {"input": 10.0, "output": 30.0}


async def state(http: aiohttp.ClientSession, url: str, **headers: str) -> tuple[int, Any]:
    async with http.get(url + "/dashboard/api/state", headers=headers) as response:
        return response.status, await response.json()


async def test_money_by_day_sums_to_the_month_and_the_feed_names_its_stages(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    paid = await mock_backend("paid", models=["gpt-x"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500)
    gw = await gateway(make_config([backend(paid, models=["gpt-x"], type="openai",
                                            api_key_env="OAI",
                                            pricing={"gpt-x": dict(PRICE)})],
                                   routing={"budget": {"monthly_limit_usd": 2.0}}),
                       {"OAI": "sk"})
    for _ in range(3):
        async with http.post(gw.url + "/v1/chat/completions", json={
                "model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}) as r:
            assert r.status == 200
    async with http.post(gw.url + "/v1/chat/completions", json={
            "model": "nope", "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status == 404
    status, data = await state(http, gw.url)
    assert status == 200
    money = data["money"]
    assert money["spent_micro_usd"] == 3 * 25_000
    assert sum(d["micro_usd"] for d in money["by_day"]) == money["spent_micro_usd"]
    assert {d["day"]: d["micro_usd"] for d in money["by_day"]}[day_of()] == 75_000
    assert money["projected_micro_usd"] >= money["spent_micro_usd"]
    assert (money["limit_micro_usd"], money["soft_micro_usd"]) == (2_000_000, 1_500_000)
    assert money["by_backend"] == [{"name": "paid", "micro_usd": 75_000}]
    served, refused = data["decisions"][1], data["decisions"][0]  # newest first
    assert (served["backend"], served["status"], served["cost_micro_usd"]) == ("paid", 200,
                                                                               25_000)
    assert [s["stage"] for s in served["stages"]] == [
        "RequestAnalyzer", "LifecycleReconciler", "PrivacyReconciler", "BudgetReconciler",
        "TierReconciler",
        "QualityReconciler", "SchedulerReconciler"]
    assert served["stages"][-1]["chosen"] == "paid"
    assert (refused["status"], refused.get("backend")) == (404, None)  # never routed
    assert data["refusals"] == [{"stage": "RequestAnalyzer", "count": 1,
                                 "reason": "The model 'nope' does not exist on any backend"}]


async def test_the_stream_pushes_the_state_again_and_again(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    local = await mock_backend("local", models=["llm"])
    gw = await gateway(make_config([backend(local, models=["llm"])]))
    async with http.get(gw.url + "/dashboard/api/stream") as response:
        assert response.headers["Content-Type"] == "text/event-stream"
        seen = []
        async for line in response.content:
            if line.startswith(b"data: "):
                seen.append(msgspec.json.decode(line[6:]))
            if len(seen) == 2:
                break
    assert seen[1]["now"] > seen[0]["now"]
    assert seen[0]["backends"][0]["name"] == "local"


async def test_the_dashboard_is_open_without_keys_and_admin_only_with_them(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    local = await mock_backend("local", models=["llm"])
    open_gw = await gateway(make_config([backend(local, models=["llm"])]))
    assert (await state(http, open_gw.url))[0] == 200

    keyed = make_config([backend(local, models=["llm"])])
    keyed.keys = [msgspec.convert({"name": "alice", "secret_env": "ALICE"}, KeyConfig)]
    no_admin = await gateway(keyed, {"ALICE": "alice-secret"})
    status, body = await state(http, no_admin.url, Authorization="Bearer alice-secret")
    assert status == 403
    assert "server.admin_key_env" in body["error"]["message"]

    with_admin = make_config([backend(local, models=["llm"])],
                             server={"admin_key_env": "ADMIN"})
    with_admin.keys = keyed.keys
    gw = await gateway(with_admin, {"ALICE": "alice-secret", "ADMIN": "admin-secret"})
    assert (await state(http, gw.url, Authorization="Bearer alice-secret"))[0] == 401
    assert (await state(http, gw.url, **{"x-api-key": "alice-secret"}))[0] == 401
    assert (await state(http, gw.url))[0] == 401
    assert (await state(http, gw.url, Authorization="Bearer admin-secret"))[0] == 200
    for path in ("/dashboard", "/dashboard/static/app.js", "/dashboard/static/style.css"):
        async with http.get(gw.url + path) as response:  # no data in them: served to all
            assert response.status == 200
    async with http.post(gw.url + "/dashboard/api/explain", json={"model": "llm"},
                         headers={"Authorization": "Bearer alice-secret"}) as response:
        assert response.status == 401


def call(request_id: str) -> Call:
    return Call(request_id=request_id, endpoint="chat", model="m", body=b"{}")


def test_the_feed_keeps_the_latest_decisions_and_an_hour_of_refusals() -> None:
    now = [1_000_000.0]
    feed = Feed(["RequestAnalyzer"], clock=lambda: now[0])
    for i in range(RECENT + 5):
        feed.record(call(f"r{i}"), None, 200, None, 1.0, 0)
    decisions = feed.decisions()
    assert len(decisions) == RECENT
    assert all(not hasattr(d, "call") for d in feed.recent)  # no request body kept alive
    assert decisions[0]["request_id"] == f"r{RECENT + 4}"  # newest first
    feed.refused(ModelNotFound("no model x"))
    feed.refused(ModelNotFound("no model x"))
    feed.refused(RateLimitExceeded("key alice: 30 requests a minute"))
    assert feed.refusals() == [
        {"stage": "RequestAnalyzer", "reason": "no model x", "count": 2},
        {"stage": "Admission", "reason": "key alice: 30 requests a minute", "count": 1}]
    now[0] += 59 * 60
    assert len(feed.refusals()) == 2
    now[0] += 2 * 60  # an hour on: gone
    feed.refused(ModelNotFound("no model y"))
    assert feed.refusals() == [{"stage": "RequestAnalyzer", "reason": "no model y",
                                "count": 1}]


async def test_operations_and_recommendations_are_the_fleets_and_say_when_redis_is_away(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        own_redis: Any, redis_prefix: str) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", models=["other"])
    config = make_config([backend(ollama, type="ollama")],
                         redis={"url": own_redis.url, "prefix": redis_prefix})
    one, two = await gateway(config), await gateway(config)
    async with http.post(one.url + "/v1/models/load",
                         json={"model": "qwen3:8b", "backend": "gpu"}) as r:
        operation = (await r.json())["id"]
    _, shown = await state(http, two.url)  # started on one, shown on two
    assert [o["id"] for o in shown["placement"]["operations"]] == [operation]
    assert shown["placement"]["available"] is True
    assert shown["placement"]["mode"] == "advice"
    own_redis.kill()

    async def read() -> tuple[int, Any]:
        return await state(http, two.url)

    # the page still loads (the state is rebuilt each second); this part says it cannot
    status, shown = await eventually(read, lambda s: not s[1]["placement"]["available"],
                                     within=30)
    assert status == 200
    assert shown["placement"]["operations"] == []
