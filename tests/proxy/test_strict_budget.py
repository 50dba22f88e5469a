"""Strict budgets through HTTP: hold the estimate, settle the bill, release on failure."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
    post,
)

KEY = {"CLOUD_KEY": "sk-test"}
# gpt-4o at $2.50 / $10 per million tokens: "hi" is 4 tokens in, max_tokens 100 out.
ESTIMATE = -(-(4 * 2500 + 100 * 10_000) // 1000)  # 1010 micro-USD
BILL = -(-(10 * 2500 + 20 * 10_000) // 1000)      # what the mocks report: 225 micro-USD


async def strict_gateway(mock_backend: MockFactory, gateway: GatewayFactory,
                         limit_usd: float, **first: Any) -> tuple[RunningGateway, Any, Any]:
    usage = {"usage_prompt_tokens": 10, "usage_completion_tokens": 20}
    one = await mock_backend("paid-1", models=["gpt-4o"], **usage, **first)
    two = await mock_backend("paid-2", models=["gpt-4o"], **usage)
    cloud = {"type": "openai", "api_key_env": "CLOUD_KEY"}

    config = make_config([backend(one, priority=90, **cloud), backend(two, priority=10, **cloud)],
                         routing={"budget": {"monthly_limit_usd": limit_usd,
                                             "enforcement": "strict",
                                             "hard_limit_action": "warn"}})
    return await gateway(config, dict(KEY)), one, two


async def money(gw: RunningGateway) -> tuple[int, int]:
    store = gw.gateway.store
    breakdown = await store.breakdown(store.budget_view().month)
    return breakdown.total_micro_usd, breakdown.reserved_micro_usd


async def test_the_bill_replaces_the_hold(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, _, _ = await strict_gateway(mock_backend, gateway, limit_usd=1.0)
    status, headers, _ = await post(http, gw.url, chat("gpt-4o", max_tokens=100))
    assert (status, headers["X-Nexus-Backend"]) == (200, "paid-1")
    assert headers["X-Nexus-Cost-Estimated"] == f"0.{ESTIMATE:06d}"
    assert await money(gw) == (BILL, 0)


async def test_a_retry_under_a_tight_limit_reuses_the_requests_hold(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    # Room for exactly one estimate: the retry on the second backend must not need two.
    gw, one, _ = await strict_gateway(mock_backend, gateway, limit_usd=ESTIMATE / 1e6,
                                      status=500)
    status, headers, _ = await post(http, gw.url, chat("gpt-4o", max_tokens=100))
    assert (status, headers["X-Nexus-Backend"]) == (200, "paid-2")
    assert len(one.chat_requests()) == 1
    assert await money(gw) == (BILL, 0)


async def test_a_request_no_backend_served_leaves_no_hold_and_no_charge(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, _, two = await strict_gateway(mock_backend, gateway, limit_usd=1.0, status=500)
    two.set(status=500)
    status, _, _ = await post(http, gw.url, chat("gpt-4o", max_tokens=100))
    assert status == 502
    assert await money(gw) == (0, 0)  # a kept hold would count as spent at expiry


async def test_a_request_that_would_pass_the_limit_is_refused_before_it_is_sent(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, one, two = await strict_gateway(mock_backend, gateway, limit_usd=(ESTIMATE - 1) / 1e6)
    status, _, answer = await post(http, gw.url, chat("gpt-4o", max_tokens=100))
    assert status == 503
    assert answer["error"]["code"] == "budget_exceeded"  # type: ignore[index]
    assert "would pass the monthly limit" in answer["error"]["message"]  # type: ignore[index]
    assert one.chat_requests() == two.chat_requests() == []
    assert await money(gw) == (0, 0)
