"""`nexus backends add|remove` and `nexus models recommendations` against a running
gateway, through its admin API."""

from __future__ import annotations

import json

from tests.cli.test_models_cli import nexus
from tests.fleet.test_prewarm import fixed_clock, rising, seed
from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config


async def test_add_detects_the_type_and_remove_takes_it_out(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    fixed = await mock_backend("fixed")
    lan = await mock_backend("lan", flavor="ollama", models=["qwen3:8b"])
    gw = await gateway(make_config([backend(fixed)]))
    code, out, err = await nexus("backends", "add", lan.url, "--name", "lab-box",
                                 "--vram-gb", "24", "--url", gw.url)
    assert code == 0, err
    assert out.strip() == f"added lab-box (ollama, {lan.url}): qwen3:8b"
    assert gw.gateway.registry.get("lab-box").config.vram_gb == 24
    code, out, _ = await nexus("backends", "--url", gw.url, "--json")
    assert {b["name"] for b in json.loads(out)["backends"]} >= {"fixed", "lab-box"}
    code, _, err = await nexus("backends", "add", lan.url, "--name", "lab-box",
                               "--url", gw.url)
    assert code == 1
    assert "exists" in err
    code, _, err = await nexus("backends", "remove", "fixed", "--url", gw.url)
    assert code == 1
    assert "configuration file" in err
    code, out, err = await nexus("backends", "remove", "lab-box", "--url", gw.url)
    assert (code, out.strip()) == (0, "removed lab-box"), err
    assert gw.gateway.registry.get("lab-box") is None


async def test_add_of_a_server_that_is_not_there_says_so(gateway: GatewayFactory) -> None:
    gw = await gateway(make_config([]))
    code, _, err = await nexus("backends", "add", "http://127.0.0.1:9", "--url", gw.url)
    assert code == 1
    assert "400" in err
    assert "127.0.0.1:9" in err


async def test_recommendations_are_shown_as_a_table_and_as_json(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", models=["other"])
    gw = await gateway(make_config([backend(ollama, type="ollama")]))
    code, out, _ = await nexus("models", "recommendations", "--url", gw.url)
    assert (code, out.strip()) == (0, "no recommendations now (mode: advice)")
    fixed_clock(gw)
    seed(gw.gateway.store, "qwen3:8b", rising())
    await gw.gateway.prewarm.run_once()
    code, out, _ = await nexus("models", "recommendations", "--url", gw.url)
    assert code == 0
    header, row = out.splitlines()[:2]
    assert header.split()[:3] == ["MODEL", "LOAD", "ON"]
    assert row.split()[:4] == ["qwen3:8b", "gpu", "95%", "rising"]
    code, out, _ = await nexus("models", "recommendations", "--url", gw.url, "--json")
    assert json.loads(out)["recommendations"][0]["backends"] == ["gpu"]
