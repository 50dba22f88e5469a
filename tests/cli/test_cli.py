"""The CLI as an operator scripts it: one way to pass a key, exit codes that mean one
thing (0 ok, 1 refusal or error, 2 usage or config), answers that say what to do."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from nexus.cli.main import main
from tests.support.helpers import GatewayFactory, MockFactory, RunningGateway, backend, make_config

KEYS = {"NEXUS_KEYS": "client-key"}


@pytest.fixture
async def gw(mock_backend: MockFactory, gateway: GatewayFactory) -> RunningGateway:
    mock = await mock_backend("gpu-1", models=["llama3:8b", "qwen2:7b"])
    paid = await mock_backend("paid", models=["gpt-4o"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500)
    config = make_config([backend(mock, zone="restricted"),
                          backend(paid, type="openai", api_key_env="OAI_KEY",
                                  pricing={"gpt-4o": {"input": 2.5, "output": 10.0}})],
                         server={"api_keys_env": "NEXUS_KEYS", "admin_key_env": "NEXUS_ADMIN"},
                         routing={"aliases": {"fast": "qwen2:7b"}})
    return await gateway(config, {**KEYS, "OAI_KEY": "sk", "NEXUS_ADMIN": "admin-key"})


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("command", ["backends", "models", "budget"])
async def test_every_gateway_command_takes_a_key_from_the_environment(
        gw: RunningGateway, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    code, _, err = await cli(capsys, command, "--url", gw.url)
    assert code == 1
    assert "401" in err
    assert "NEXUS_API_KEY" in err
    monkeypatch.setenv("MY_KEY", "client-key")
    code, out, _ = await cli(capsys, command, "--url", gw.url, "--api-key-env", "MY_KEY",
                             "--json")
    assert code == 0
    json.loads(out)
    monkeypatch.setenv("NEXUS_API_KEY", "client-key")  # the default variable
    assert (await cli(capsys, command, "--url", gw.url))[0] == 0


async def test_models_print_as_an_aligned_table(
        gw: RunningGateway, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_API_KEY", "client-key")
    code, out, _ = await cli(capsys, "models", "--url", gw.url)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["MODEL", "CONTEXT", "ALIAS", "OF", "BACKENDS"]
    column = lines[0].index("CONTEXT")
    for line in lines[1:]:  # the second column starts at the same place on every line
        assert line[column - 2:column] == "  "
        assert line[column] != " "
    assert any(line.startswith("fast ") and "qwen2:7b" in line for line in lines)


async def test_explain_of_a_refused_request_prints_why_and_exits_1(
        gw: RunningGateway, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_API_KEY", "client-key")
    code, out, _ = await cli(capsys, "explain", "--url", gw.url, "-m", "unknown-model")
    assert code == 1
    assert "no backend serves this model" in out
    assert "HTTP 404" in out
    code, out, _ = await cli(capsys, "explain", "--url", gw.url, "-m", "gpt-4o",
                             "--privacy", "restricted")
    assert code == 1
    assert "PrivacyReconciler: paid (" in out
    assert "suggestion:" in out
    assert (await cli(capsys, "explain", "--url", gw.url, "-m", "llama3:8b"))[0] == 0


async def test_budget_without_redis_shows_the_replicas_own_spend(
        gw: RunningGateway, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch, http: aiohttp.ClientSession) -> None:
    async with http.post(gw.url + "/v1/chat/completions",
                         headers={"Authorization": "Bearer client-key"},
                         json={"model": "gpt-4o",
                               "messages": [{"role": "user", "content": "hi"}]}) as r:
        assert r.status == 200
    monkeypatch.setenv("NEXUS_API_KEY", "admin-key")  # the operator's: the whole fleet
    code, out, _ = await cli(capsys, "budget", "--url", gw.url, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["spent_micro_usd"] == 7500  # 1000 in at $2.50/M, 500 out at $10/M
    assert data["by_backend"] == {"paid": 7500}
    code, out, _ = await cli(capsys, "budget", "--url", gw.url)
    assert "spent $0.007500" in out
    monkeypatch.setenv("NEXUS_API_KEY", "client-key")  # a tenant's: its own key only
    code, out, _ = await cli(capsys, "budget", "--url", gw.url, "--json")
    assert code == 0
    data = json.loads(out)
    assert data["spent_micro_usd"] == 7500
    assert data["by_backend"] == {}
    assert list(data["by_key"]) == [data["scope"].removeprefix("key:")]


@pytest.mark.parametrize("month", ["2026-13", "2026-00", "26-01", "2026-1"])
def test_budget_refuses_a_month_that_is_not_one(
        capsys: pytest.CaptureFixture[str], month: str) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["budget", "--month", month])
    assert exited.value.code == 2
    assert "YYYY-MM" in capsys.readouterr().err


def test_an_invalid_enum_value_lists_the_valid_ones(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text('[routing]\nstrategy = "fastest"\n')
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "routing.strategy" in err
    assert "'smart', 'round_robin', 'priority_only', 'random'" in err


def test_check_json_on_an_invalid_file_prints_the_error_as_json(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "nexus.toml"
    path.write_text("[server]\nport = 0\n")
    assert main(["check", str(path), "--json"]) == 2
    answer = json.loads(capsys.readouterr().out)
    assert answer["valid"] is False
    assert answer["source"] == str(path)
    assert answer["error"]["key"] == "server.port"


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    out = capsys.readouterr().out
    description = out.split("\n\n", 1)[1].split("Exit status")[0]
    for command in ("serve", "check", "config", "backends", "models", "budget", "explain",
                    "keys", "teams"):
        assert command in out.split("commands:")[1]
        assert command in description  # the description names each one too
    assert "Exit status" in out
