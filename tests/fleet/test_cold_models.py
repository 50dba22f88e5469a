"""A model present but not in memory (Ollama not loaded, llama-server asleep) stays
routable but scores below a warm copy, and says what it costs: its load time, as the
fleet last measured it. llama-server's loads are followed on its /models/sse events."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.fleet.test_placement import call, finished, fleet
from tests.support.helpers import GatewayFactory, MockFactory, RunningGateway, chat, until

ENGINE = {"type": "llamacpp", "engine_interval_seconds": 0.05}


def read_loaded(gw: RunningGateway, name: str) -> frozenset[str] | None:
    engine = gw.gateway.registry.get(name).state.engine
    return None if engine is None else engine.loaded


async def explain(http: aiohttp.ClientSession, gw: RunningGateway,
                  model: str) -> dict[str, Any]:
    async with http.post(gw.url + "/v1/routing/explain", json=chat(model)) as r:
        assert r.status == 200, await r.text()
        return dict(await r.json())


@pytest.mark.parametrize("events", [True, False], ids=["sse", "polling"])
async def test_a_llama_server_load_is_followed_to_its_end(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        events: bool) -> None:
    router = await mock_backend("router", flavor="llama-router", models=["m"], loaded=[],
                                hold_loads=True, router_sse=events)
    (gw,) = await fleet(gateway, None, (router, {"type": "llamacpp"}), replicas=1)
    _, operation = await call(http, gw, "POST", "/v1/models/load",
                              {"model": "m", "backend": "router"})
    if events:  # the stage progress the event stream carries: half of stage 1 of 2
        await until(lambda: gw.gateway.registry.get("router").transitions.get("m") is not None
                    and gw.gateway.registry.get("router").transitions["m"].progress == 0.25,
                    within=30)
        assert any(r.path == "/models/sse" for r in router.received)
    router.release.set()
    done = await finished(http, gw, operation["id"])
    assert (done["state"], done["progress"]) == ("done", 1.0)
    assert gw.gateway.registry.get("router").load_seconds["m"] >= 0


async def test_a_sleeping_model_scores_below_a_loaded_one_and_says_why(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    warm = await mock_backend("warm", flavor="llama-router", models=["m"])
    cold = await mock_backend("cold", flavor="llama-router", models=["m"], sleeping=["m"])
    (gw,) = await fleet(gateway, None, (warm, ENGINE), (cold, ENGINE), replicas=1)
    await until(lambda: read_loaded(gw, "warm") == {"m"} and read_loaded(gw, "cold") ==
                frozenset(), within=30)
    explained = await explain(http, gw, "m")
    scores = {s["backend"]: s for s in explained["scores"]}
    assert scores["warm"]["score"] > scores["cold"]["score"]
    assert scores["warm"]["cold"] is None
    assert scores["cold"]["cold"] == ("cold: m is not in memory on cold and loads first (its "
                                      "load time there is not measured yet)")
    for _ in range(4):  # routable, but not chosen over the warm copy
        async with http.post(gw.url + "/v1/chat/completions", json=chat("m")) as r:
            assert r.status == 200
            assert r.headers["X-Nexus-Backend"] == "warm"


async def test_a_cold_copy_is_still_served_with_its_measured_load_time_as_the_reason(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", models=["other"])
    (gw,) = await fleet(gateway, None, (ollama, {"type": "ollama",
                                                 "engine_interval_seconds": 0.05}),
                        replicas=1)
    for kind, path, body in (("load", "/v1/models/load", {"model": "qwen3:8b",
                                                          "backend": "gpu"}),
                             ("unload", "/v1/models/qwen3:8b?backend=gpu", None)):
        _, operation = await call(http, gw, "DELETE" if kind == "unload" else "POST",
                                  path, body)
        assert (await finished(http, gw, operation["id"]))["state"] == "done"
    seconds = gw.gateway.registry.get("gpu").load_seconds["qwen3:8b"]
    await until(lambda: read_loaded(gw, "gpu") == {"other"}, within=30)  # on disk, cold
    async with http.post(gw.url + "/v1/chat/completions", json=chat("qwen3:8b")) as r:
        assert r.status == 200  # cold is not down
    decision = (await explain(http, gw, "qwen3:8b"))["decision"]
    assert decision["backend"] == "gpu"
    assert f"cold: qwen3:8b is not in memory on gpu and loads first (its last load " \
           f"there took {seconds:g} s)" in decision["reason"]
