"""`POST /v1/routing/explain` and `nexus explain`: the decision and every stage's effect."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from nexus.cli.main import main
from tests.support.helpers import GatewayFactory, MockFactory, backend, chat, make_config

STAGES = ["RequestAnalyzer", "LifecycleReconciler", "PrivacyReconciler", "BudgetReconciler",
          "TierReconciler", "QualityReconciler", "SchedulerReconciler"]


async def explained_fleet(mock_backend: MockFactory, gateway: GatewayFactory) -> str:
    local = await mock_backend("local", models=["llm"])
    outside = await mock_backend("outside", models=["llm"])
    gw = await gateway(make_config([backend(local, zone="restricted"), backend(outside)]))
    return gw.url


async def test_explain_shows_each_stage_and_the_scores_without_calling_a_backend(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    url = await explained_fleet(mock_backend, gateway)
    async with http.post(url + "/v1/routing/explain", json=chat("llm"),
                         headers={"X-Nexus-Privacy": "restricted"}) as response:
        assert response.status == 200
        data = await response.json()
    assert [s["stage"] for s in data["stages"]] == STAGES
    privacy = data["stages"][2]
    assert (privacy["before"], privacy["after"]) == (["local", "outside"], ["local"])
    assert privacy["rejected"][0]["backend"] == "outside"
    assert data["decision"]["type"] == "route"
    assert data["decision"]["backend"] == "local"
    assert data["decision"]["privacy_zone"] == "restricted"
    assert [s["backend"] for s in data["scores"]] == ["local"]
    assert data["outcome"] == "routed to local (llm)"


async def test_explain_of_an_impossible_request_shows_the_rejection(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    url = await explained_fleet(mock_backend, gateway)
    body = chat("llm", max_tokens=10)
    async with http.post(url + "/v1/routing/explain", json={**body, "model": "nope"}) as r:
        data = await r.json()
    assert data["decision"] == {"type": "reject", "model_known": False, "rejection_reasons": []}
    assert data["outcome"].startswith("HTTP 404")


async def test_explain_rejects_a_malformed_body(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    url = await explained_fleet(mock_backend, gateway)
    async with http.post(url + "/v1/routing/explain", data=b"{not json") as response:
        assert response.status == 400
        assert (await response.json())["error"]["type"] == "invalid_request_error"


async def test_nexus_explain_prints_stages_for_people_and_json_for_scripts(
        mock_backend: MockFactory, gateway: GatewayFactory,
        capsys: pytest.CaptureFixture[str]) -> None:
    url = await explained_fleet(mock_backend, gateway)
    code = await asyncio.to_thread(main, ["explain", "--url", url, "-m", "llm", "--privacy",
                                          "restricted"])
    out = capsys.readouterr().out
    assert code == 0
    assert "decision: route to local (llm)" in out
    assert "PrivacyReconciler" in out
    assert "- outside: zone 'open' may not receive restricted traffic" in out
    code = await asyncio.to_thread(main, ["explain", "--url", url, "-m", "llm", "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["decision"]["type"] == "route"


def test_nexus_explain_without_a_gateway_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--url", "http://127.0.0.1:9", "-m", "llm"]) == 1
    assert "cannot reach the gateway" in capsys.readouterr().err
