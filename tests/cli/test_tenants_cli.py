"""`nexus keys|teams` against Redis and against a gateway's admin API; the secret is
printed once, by create, and never again; attribution shows in budget and /metrics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from nexus.cli.main import main
from tests.support.helpers import GatewayFactory, MockFactory, backend, chat, make_config
from tests.support.redis_server import RedisServer


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def redis_config(tmp_path: Path, server: RedisServer, prefix: str) -> str:
    path = tmp_path / "nexus.toml"
    path.write_text(f'[redis]\nurl = "{server.url}"\nprefix = "{prefix}"\n')
    return str(path)


async def test_keys_and_teams_through_redis_show_the_secret_only_once(
        tmp_path: Path, redis_server: RedisServer, redis_prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = redis_config(tmp_path, redis_server, redis_prefix)
    assert (await cli(capsys, "teams", "create", "research", "--rpm", "60",
                      "--config", config))[0] == 0
    code, out = await cli(capsys, "keys", "create", "alice", "--team", "research",
                          "--budget-usd", "5", "--rpm", "30", "--models", "llama*,gpt-4o",
                          "--expires", "2999-01-01", "--config", config, "--json")
    assert code == 0
    made = json.loads(out)
    assert set(made) == {"name", "secret"}
    secret = made["secret"]
    outputs = [await cli(capsys, *argv, "--config", config) for argv in (
        ["keys", "list"], ["keys", "show", "alice"], ["keys", "list", "--json"],
        ["keys", "show", "alice", "--json"], ["teams", "list"], ["teams", "show", "research"])]
    assert all(code == 0 for code, _ in outputs)
    assert not any(secret in out for _, out in outputs)
    shown = json.loads(outputs[3][1])
    assert (shown["team"], shown["rpm"], shown["models"]) == ("research", 30,
                                                               ["llama*", "gpt-4o"])
    assert "research" in outputs[4][1]
    code, out = await cli(capsys, "keys", "create", "bob", "--team", "nope", "--config", config)
    assert code == 1
    assert "no team named 'nope'" in out
    assert (await cli(capsys, "keys", "revoke", "alice", "--config", config))[0] == 0
    assert "alice" not in (await cli(capsys, "keys", "list", "--config", config))[1]


async def test_keys_through_a_gateways_admin_api_with_the_admin_key(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    paid = await mock_backend("paid", models=["gpt-4o"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500)
    config = make_config([backend(paid, type="openai", api_key_env="OAI")],
                         server={"admin_key_env": "ADMIN"})
    gw = await gateway(config, {"ADMIN": "the-admin-key", "OAI": "sk"})
    code, out = await cli(capsys, "keys", "create", "dave", "--url", gw.url)
    assert code == 1
    assert "401" in out
    monkeypatch.setenv("NEXUS_ADMIN_KEY", "the-admin-key")
    code, out = await cli(capsys, "keys", "create", "dave", "--url", gw.url)
    assert code == 0
    secret = out.strip().splitlines()[-1]
    assert secret.startswith("nx-")
    async with http.post(gw.url + "/v1/chat/completions", json=chat("gpt-4o"),
                         headers={"Authorization": f"Bearer {secret}"}) as r:
        assert r.status == 200
    code, out = await cli(capsys, "keys", "show", "dave", "--url", gw.url, "--json")
    assert (code, json.loads(out)["spent_micro_usd"]) == (0, 7500)
    assert secret not in out
    monkeypatch.setenv("NEXUS_API_KEY", secret)
    code, out = await cli(capsys, "budget", "--url", gw.url, "--by", "key")
    assert code == 0
    assert "by key" in out
    assert "dave" in out
    assert "$0.007500" in out
    assert "by backend" not in out
    async with http.get(gw.url + "/metrics",
                        headers={"Authorization": "Bearer the-admin-key"}) as r:
        metrics = await r.text()  # per-tenant series: for an authorised scraper only
    assert 'nexus_key_spend_micro_usd_total{key="dave"} 7500' in metrics
    assert secret not in metrics


async def test_budget_by_key_reads_the_fleets_attribution_from_redis(
        tmp_path: Path, redis_server: RedisServer, redis_prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    from nexus.budget.records import SpendRecord
    from nexus.config.schema import RedisConfig
    from nexus.store.redis_store import RedisStore

    store = RedisStore(RedisConfig(url=redis_server.url, prefix=redis_prefix))
    await store.start()
    store.record_spend(SpendRecord(request_id="r1", month=store.budget_view().month,
                                   backend="cloud", model="gpt-4o", cost_micro_usd=300,
                                   key="alice", team="research"))
    await store.sync()
    await store.close()
    _code, out = await cli(capsys, "budget", "--config",
                          redis_config(tmp_path, redis_server, redis_prefix), "--json")
    data: dict[str, Any] = json.loads(out)
    assert (data["by_key"], data["by_team"]) == ({"alice": 300}, {"research": 300})
