"""The pipeline's user stories end to end: HTTP in, real mock backends behind.

1. Privacy: restricted traffic stays in restricted zones on every path.
2. Budget: costs are estimated, recorded, and the month's limits steer routing.
3. Tiers: a minimum capability tier, strict by default, flexible on request.
4. Actionable rejections: a 503 names every backend, stage by stage, best hint first.
5. Quality: backends that fail or answer slowly stop getting traffic, unless none is left.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from nexus.budget.records import SpendRecord
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
    post,
    read_sse,
)

PRIVATE = {"model_pattern": "private-*", "privacy": "restricted"}
KEY_ENV = {"CLOUD_KEY": "sk-test"}


def cloud(mock: Any, **fields: Any) -> dict[str, Any]:
    """A paid OpenAI-type backend, played by a mock server."""
    return backend(mock, type="openai", api_key_env="CLOUD_KEY", **fields)


def stages_of(answer: dict[str, Any]) -> dict[str, set[str]]:
    return {g["stage"]: {r["backend"] for r in g["reasons"]}
            for g in answer["error"]["rejection_reasons"]}


async def spent(gw: RunningGateway) -> int:
    view = gw.gateway.store.budget_view()
    return view.spent_micro_usd


# -- 1. privacy --------------------------------------------------------------------------------

async def test_restricted_model_goes_only_to_the_restricted_zone(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local = await mock_backend("local", models=["private-llm"])
    outside = await mock_backend("outside", models=["private-llm"])
    gw = await gateway(make_config(
        [backend(local, zone="restricted", priority=1), backend(outside, priority=100)],
        routing={"policies": [PRIVATE]}))
    for _ in range(5):
        status, headers, _ = await post(http, gw.url, chat("private-llm"))
        assert status == 200
        assert headers["X-Nexus-Privacy-Zone"] == "restricted"
    assert outside.chat_requests() == []


async def test_restricted_traffic_is_refused_rather_than_sent_out(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local = await mock_backend("local", models=["private-llm"])
    outside = await mock_backend("outside", models=["private-llm", "open-llm"])
    gw = await gateway(make_config(
        [backend(local, zone="restricted"), backend(outside)],
        routing={"policies": [PRIVATE], "fallbacks": {"private-llm": ["open-llm"]}}))
    local.set(status=500)  # fails every request: retries must not leave the zone
    status, _, answer = await post(http, gw.url, chat("private-llm"))
    assert status == 502
    await local.stop()
    gw.gateway.registry.get("local").health.unreachable("stopped")  # type: ignore[union-attr]
    status, _, answer = await post(http, gw.url, chat("private-llm"))
    assert status == 503
    assert "outside" in stages_of(answer)["PrivacyReconciler"]
    assert outside.chat_requests() == []  # neither the retry nor the fallback chain leaked


async def test_the_privacy_header_restricts_any_model(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local = await mock_backend("local", models=["llm"])
    outside = await mock_backend("outside", models=["llm"])
    gw = await gateway(make_config([backend(local, zone="restricted", priority=1),
                                    backend(outside, priority=100)]))
    _, headers, _ = await post(http, gw.url, chat("llm"), **{"X-Nexus-Privacy": "restricted"})
    assert headers["X-Nexus-Backend"] == "local"
    _, headers, _ = await post(http, gw.url, chat("llm"))
    assert headers["X-Nexus-Backend"] == "outside"


# -- 2. budget ---------------------------------------------------------------------------------

async def budget_fleet(mock_backend: MockFactory, gateway: GatewayFactory, spent_usd: float = 0,
                       **budget: Any) -> tuple[RunningGateway, Any, Any]:
    local = await mock_backend("local", models=["gpt-4o"])
    paid = await mock_backend("paid", models=["gpt-4o"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500)
    config = make_config([backend(local, priority=10), cloud(paid, priority=90)],
                         routing={"budget": {"monthly_limit_usd": 10.0, **budget}})
    gw = await gateway(config, dict(KEY_ENV))
    if spent_usd:  # the month so far, as if earlier requests had spent it
        store = gw.gateway.store
        store.record_spend(SpendRecord(request_id="earlier", month=store.budget_view().month,
                                       backend="paid", model="gpt-4o",
                                       cost_micro_usd=int(spent_usd * 1_000_000)))
    return gw, local, paid


async def test_paid_requests_carry_an_estimate_and_their_cost_is_recorded(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, _, _ = await budget_fleet(mock_backend, gateway)
    status, headers, _ = await post(http, gw.url, chat("gpt-4o", max_tokens=100))
    assert status == 200
    assert headers["X-Nexus-Backend"] == "paid"
    assert headers["X-Nexus-Budget-Status"] == "normal"
    # Estimate: "hi" is 4 input tokens (one message's overhead) at $2.50/M, 100 out at $10/M.
    assert headers["X-Nexus-Cost-Estimated"] == "0.001010"
    # The mock billed 1000 prompt + 500 completion tokens: $0.0025 + $0.005.
    assert await spent(gw) == 7500
    breakdown = await gw.gateway.store.breakdown(gw.gateway.store.budget_view().month)
    assert breakdown.by_backend == {"paid": 7500}
    assert breakdown.by_model == {"gpt-4o": 7500}


async def test_a_stream_without_usage_is_charged_by_estimate(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, _, paid = await budget_fleet(mock_backend, gateway)
    paid.set(omit_usage=True)
    async with http.post(gw.url + "/v1/chat/completions",
                         json=chat("gpt-4o", stream=True)) as response:
        events = await read_sse(response)
    assert events[-1] == "[DONE]"
    # No usage: the request's 4 estimated input tokens plus one token per relayed event
    # that carried one (not the role's opening, not the finish event, not [DONE]).
    output_tokens = sum(1 for e in events[:-1]
                        if json.loads(e)["choices"] and
                        json.loads(e)["choices"][0]["delta"].get("content"))
    assert output_tokens == 3
    assert await spent(gw) == -(-(4 * 2500 + output_tokens * 10_000) // 1000)


async def test_soft_limit_prefers_local_backends(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, _, _ = await budget_fleet(mock_backend, gateway, spent_usd=8.0)
    status, headers, _ = await post(http, gw.url, chat("gpt-4o"))
    assert status == 200
    assert headers["X-Nexus-Budget-Status"] == "soft_limit"
    assert headers["X-Nexus-Backend"] == "local"


async def test_hard_limit_blocks_paid_backends(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, local, paid = await budget_fleet(mock_backend, gateway, spent_usd=10.0)
    _, headers, _ = await post(http, gw.url, chat("gpt-4o"))
    assert headers["X-Nexus-Backend"] == "local"
    assert headers["X-Nexus-Budget-Status"] == "hard_limit"
    await local.stop()
    gw.gateway.registry.get("local").health.unreachable("stopped")  # type: ignore[union-attr]
    status, _, answer = await post(http, gw.url, chat("gpt-4o"))
    assert status == 503
    assert stages_of(answer)["BudgetReconciler"] == {"paid"}
    assert paid.chat_requests() == []


async def test_hard_limit_warn_lets_paid_traffic_through_with_a_warning(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, _, _ = await budget_fleet(mock_backend, gateway, spent_usd=10.0,
                                  hard_limit_action="warn")
    _, headers, _ = await post(http, gw.url, chat("gpt-4o"))
    assert headers["X-Nexus-Backend"] == "paid"
    assert "hard limit" in headers["X-Nexus-Budget-Warning"]


# -- 3. tiers ----------------------------------------------------------------------------------

async def tier_fleet(mock_backend: MockFactory,
                     gateway: GatewayFactory) -> tuple[RunningGateway, Any, Any]:
    small = await mock_backend("small", models=["code"])
    big = await mock_backend("big", models=["code"])
    gw = await gateway(make_config(
        [backend(small, tier=1, priority=100), backend(big, tier=3, priority=1)],
        routing={"policies": [{"model_pattern": "code", "min_tier": 3}]}))
    return gw, small, big


async def test_min_tier_keeps_lower_tiers_out(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, small, _ = await tier_fleet(mock_backend, gateway)
    _, headers, _ = await post(http, gw.url, chat("code"))
    assert headers["X-Nexus-Backend"] == "big"
    assert small.chat_requests() == []


async def test_flexible_accepts_a_lower_tier_and_says_so(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, _, big = await tier_fleet(mock_backend, gateway)
    await big.stop()
    gw.gateway.registry.get("big").health.unreachable("stopped")  # type: ignore[union-attr]
    status, _, answer = await post(http, gw.url, chat("code"))
    assert status == 503
    assert answer["error"]["suggestion"] == "send X-Nexus-Flexible to accept a lower tier"
    status, headers, _ = await post(http, gw.url, chat("code"), **{"X-Nexus-Flexible": "true"})
    assert status == 200
    assert headers["X-Nexus-Backend"] == "small"
    assert "min_tier 3" in headers["X-Nexus-Tier-Warning"]
    status, _, _ = await post(http, gw.url, chat("code"),
                              **{"X-Nexus-Flexible": "true", "X-Nexus-Strict": "true"})
    assert status == 503


# -- 4. actionable rejections ------------------------------------------------------------------

async def test_a_rejection_lists_every_backend_by_stage_with_the_best_hint_first(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    low = await mock_backend("low-tier", models=["code"])
    outside = await mock_backend("outside", models=["code"])
    gw = await gateway(make_config(
        [backend(low, tier=1, zone="restricted"), backend(outside, tier=5),
         {"name": "gone", "url": "http://127.0.0.1:9", "models": ["code"], "tier": 5,
          "zone": "restricted"}],
        routing={"policies": [{"model_pattern": "code", "min_tier": 2}]}))
    status, headers, answer = await post(http, gw.url, chat("code"),
                                         **{"X-Nexus-Privacy": "restricted"})
    assert status == 503
    assert headers["Content-Type"].startswith("application/json")
    error = answer["error"]
    assert error["code"] == "no_viable_backend"
    assert [g["stage"] for g in error["rejection_reasons"]] == \
        ["TierReconciler", "PrivacyReconciler", "SchedulerReconciler"]
    assert stages_of(answer) == {"TierReconciler": {"low-tier"},
                                 "PrivacyReconciler": {"outside"},
                                 "SchedulerReconciler": {"gone"}}
    assert error["suggestion"] == "send X-Nexus-Flexible to accept a lower tier"
    assert all(r["suggestion"] for g in error["rejection_reasons"] for r in g["reasons"])


# -- 5. quality --------------------------------------------------------------------------------

async def test_a_backend_failing_often_stops_getting_traffic(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    flaky = await mock_backend("flaky", models=["llm"], status=500)
    steady = await mock_backend("steady", models=["llm"])
    gw = await gateway(make_config([backend(flaky, priority=100), backend(steady, priority=1)],
                                   quality={"min_requests": 4},
                                   health_check={"failure_threshold": 1000}))
    for _ in range(8):  # each fails on flaky first, then succeeds on steady by retry
        status, _, _ = await post(http, gw.url, chat("llm"))
        assert status == 200
    tried_flaky = len(flaky.chat_requests())
    assert tried_flaky >= 4
    for _ in range(5):
        _, headers, _ = await post(http, gw.url, chat("llm"))
        assert headers["X-Nexus-Backend"] == "steady"
        assert "retry" not in headers["X-Nexus-Route-Reason"]
    assert len(flaky.chat_requests()) == tried_flaky


async def test_when_every_backend_is_degraded_traffic_still_flows(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    only = await mock_backend("only", models=["llm"])
    gw = await gateway(make_config([backend(only)], quality={"min_requests": 1}))
    gw.gateway.registry.get("only").metrics.first_token(60_000.0)  # type: ignore[union-attr]
    status, _, _ = await post(http, gw.url, chat("llm"))
    assert status == 200
    explained = await (await http.post(gw.url + "/v1/routing/explain", json=chat("llm"))).json()
    quality = next(s for s in explained["stages"] if s["stage"] == "QualityReconciler")
    assert "every candidate is degraded" in quality["adjustments"][0]["reason"]
