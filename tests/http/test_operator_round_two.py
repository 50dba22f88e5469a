"""What a newcomer tripped on, as tests: clients' retry habits, the endpoints SDKs
call, tenant housekeeping, and the CLI's promises."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import msgspec
import pytest

from nexus.config.schema import KeyConfig
from nexus.tenants.model import sha256_of
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
)

ADMIN = "admin-secret"
ENV = {"NEXUS_ADMIN": ADMIN, "OAI": "sk-test"}


def key(name: str, **fields: Any) -> KeyConfig:
    return msgspec.convert({"name": name, "secret_sha256": sha256_of(name), **fields}, KeyConfig)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def start(mock_backend: MockFactory, gateway: GatewayFactory, *keys: KeyConfig,
                **sections: Any) -> RunningGateway:
    mock = await mock_backend("gpu", models=["llm", "other"])
    paid = await mock_backend("paid", models=["gpt-4o"])
    config = make_config([backend(mock), backend(paid, type="openai", api_key_env="OAI",
                                                  pricing={"gpt-4o": {"input": 5, "output": 15}})],
                         server={"admin_key_env": "NEXUS_ADMIN"}, **sections)
    config.keys = list(keys)
    return await gateway(config, ENV)


async def test_an_out_of_budget_429_tells_every_sdk_not_to_retry(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    gw = await start(mock_backend, gateway, key("broke", monthly_budget_usd=0.0))
    async with http.post(gw.url + "/v1/chat/completions", json=chat("gpt-4o"),
                         headers=bearer("broke")) as r:
        assert r.status == 429
        assert r.headers["x-should-retry"] == "false"
        assert (await r.json())["error"]["code"] == "insufficient_quota"


async def test_a_rate_limit_429_carries_the_tokens_headers_too(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    gw = await start(mock_backend, gateway, key("slow", rpm=1, tpm=100_000))
    statuses = []
    for _ in range(2):
        async with http.post(gw.url + "/v1/chat/completions", json=chat("llm"),
                             headers=bearer("slow")) as r:
            statuses.append((r.status, dict(r.headers)))
    assert [s for s, _ in statuses] == [200, 429]
    refused = statuses[1][1]
    assert refused["x-ratelimit-remaining-requests"] == "0"
    assert refused["x-ratelimit-limit-tokens"] == "100000"
    assert "x-ratelimit-remaining-tokens" in refused
    assert "x-ratelimit-reset-tokens" in refused


async def test_a_key_sees_and_retrieves_only_the_models_its_globs_allow(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    gw = await start(mock_backend, gateway, key("narrow", models=["ll*"]))
    async with http.get(gw.url + "/v1/models", headers=bearer("narrow")) as r:
        assert [m["id"] for m in (await r.json())["data"]] == ["llm"]
    async with http.get(gw.url + "/v1/models/llm", headers=bearer("narrow")) as r:
        assert r.status == 200
        assert (await r.json())["id"] == "llm"
    async with http.get(gw.url + "/v1/models/gpt-4o", headers=bearer("narrow")) as r:
        assert r.status == 404
        assert (await r.json())["error"]["code"] == "model_not_found"
    async with http.get(gw.url + "/v1/models/gpt-4o", headers=bearer(ADMIN)) as r:
        assert r.status == 200  # the admin key reads every model
    async with http.get(gw.url + "/v1/models", headers=bearer(ADMIN)) as r:
        assert {m["id"] for m in (await r.json())["data"]} == {"llm", "other", "gpt-4o"}


async def test_an_expired_key_is_told_it_expired(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    gw = await start(mock_backend, gateway, key("old", expires_at="2020-01-01"), key("ok"))
    async with http.post(gw.url + "/v1/chat/completions", json=chat("llm"),
                         headers=bearer("old")) as r:
        assert r.status == 401
        error = (await r.json())["error"]
    assert "expired" in error["message"]
    assert error["code"] == "expired_api_key"


async def test_a_team_with_keys_cannot_be_deleted_from_under_them(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    gw = await start(mock_backend, gateway)
    admin = bearer(ADMIN)
    async with http.post(gw.url + "/admin/teams", json={"name": "red"}, headers=admin) as r:
        assert r.status == 201
    async with http.post(gw.url + "/admin/keys", json={"name": "ann", "team": "red"},
                         headers=admin) as r:
        assert r.status == 201
    async with http.delete(gw.url + "/admin/teams/red", headers=admin) as r:
        assert r.status == 409
        assert "ann" in (await r.json())["error"]["message"]
    async with http.delete(gw.url + "/admin/keys/ann", headers=admin) as r:
        assert r.status == 200
    async with http.delete(gw.url + "/admin/teams/red", headers=admin) as r:
        assert r.status == 200


async def test_refusals_say_what_to_send_and_404_lists_every_endpoint(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    gw = await start(mock_backend, gateway, key("client"))
    async with http.get(gw.url + "/admin/keys") as r:
        message = (await r.json())["error"]["message"]
    assert "--admin-key-env" in message
    assert "client key" not in message  # no key was sent at all
    async with http.get(gw.url + "/admin/keys", headers=bearer("client")) as r:
        assert "is not it, and a client key is not one" in (await r.json())["error"]["message"]
    async with http.get(gw.url + "/no/such/path", headers=bearer("client")) as r:
        message = (await r.json())["error"]["message"]
    for endpoint in ("/v1/messages", "/v1/embeddings", "/dashboard", "/v1/chat/completions"):
        assert endpoint in message


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    from nexus.cli.main import main
    try:
        code = main(list(argv))
    except SystemExit as exited:
        code = int(exited.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_cli_has_a_version_and_usage_errors_exit_2(
        capsys: pytest.CaptureFixture[str], tmp_path: Any) -> None:
    code, out, _ = cli(capsys, "--version")
    assert (code, out.strip()) == (0, "nexus 0.1.0")
    existing = tmp_path / "nexus.toml"
    existing.write_text("")
    assert cli(capsys, "config", "init", "-o", str(existing))[0] == 2
    assert cli(capsys, "keys", "create", "bob", "--rpm", "-1", "--config", str(existing))[0] == 2
    plain = tmp_path / "plain.toml"
    plain.write_text('[server]\nport = 8123\n')
    code, _, err = cli(capsys, "keys", "create", "bob", "--config", str(plain))
    assert code == 2
    assert "--url" in err


async def test_an_unreachable_gateway_suggests_url_and_config(
        capsys: pytest.CaptureFixture[str]) -> None:
    from tests.support.redis_server import free_port
    code, _, err = await asyncio.to_thread(
        cli, capsys, "models", "--url", f"http://127.0.0.1:{free_port()}")
    assert code == 1
    assert "--url" in err
    assert "--config" in err


async def test_a_small_budget_holds_what_the_request_can_cost_and_says_what_fits(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    """$0.00005 at $15 per million output tokens: 512 tokens by default do not fit,
    a couple do; the refusal says how many."""
    gw = await start(mock_backend, gateway, key("tiny", monthly_budget_usd=0.00005,
                                                 models=["gpt-4o"]))
    async with http.post(gw.url + "/v1/chat/completions", json=chat("gpt-4o"),
                         headers=bearer("tiny")) as r:
        assert r.status == 429
        message = (await r.json())["error"]["message"]
    assert "max_tokens of at most" in message
    fits = int(message.split("max_tokens of at most ")[1].split()[0])
    assert 1 <= fits < 512
    async with http.post(gw.url + "/v1/chat/completions", json=chat("gpt-4o", max_tokens=fits),
                         headers=bearer("tiny")) as r:
        assert r.status == 200, await r.text()


async def test_the_default_output_estimate_is_configurable(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    gw = await start(mock_backend, gateway, key("tiny", monthly_budget_usd=0.00005,
                                                 models=["gpt-4o"]),
                     routing={"default_output_tokens": 1})
    async with http.post(gw.url + "/v1/chat/completions", json=chat("gpt-4o"),
                         headers=bearer("tiny")) as r:
        assert r.status == 200, await r.text()


async def test_a_key_born_expired_warns_and_show_prints_readable_fields(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    gw = await start(mock_backend, gateway)
    async with http.post(gw.url + "/admin/keys", headers=bearer(ADMIN),
                         json={"name": "late", "expires_at": "2020-01-01"}) as r:
        assert r.status == 201
        assert "expired already" in (await r.json())["warning"]
    monkeypatch.setenv("NEXUS_ADMIN_KEY", ADMIN)
    code, out, err = await asyncio.to_thread(
        cli, capsys, "keys", "create", "later", "--expires", "2020-01-02", "--url", gw.url)
    assert code == 0
    assert "expired already" in err
    code, out, _ = await asyncio.to_thread(cli, capsys, "keys", "show", "late", "--url", gw.url)
    assert code == 0
    assert "expires at" in out
    assert "2020-01-01" in out
    assert "True" not in out  # booleans read as yes/no
    assert "{" not in out     # no reprs


async def test_a_backends_own_404_says_which_backend_answered(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    lost = await mock_backend("lost", models=["llm"], status=404)
    gw = await gateway(make_config([backend(lost)]), ENV)
    async with http.post(gw.url + "/v1/chat/completions", json=chat("llm")) as r:
        assert r.status == 404
        assert "lost answered HTTP 404" in (await r.json())["error"]["message"]
