"""The tenant edge tried as an attacker would: a wiped Redis, a forged request id, hostile
headers and names, credentials in backend URLs, and one tenant reading another's figures.
Each test here failed before its fix."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest

from nexus.tenants.model import sha256_of
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
    until,
)
from tests.support.redis_server import RedisServer

ADMIN = "admin-secret"
METRICS = "metrics-secret"
ENV = {"NEXUS_ADMIN": ADMIN, "NEXUS_METRICS": METRICS, "OAI": "sk-test",
       "ANTHROPIC_API_KEY": "sk-ant-test"}
SERVER = {"admin_key_env": "NEXUS_ADMIN", "metrics_key_env": "NEXUS_METRICS"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


async def ask(http: aiohttp.ClientSession, gw: RunningGateway, secret: str | None,
              body: dict[str, Any] | None = None, path: str = "/v1/chat/completions",
              **headers: str) -> tuple[int, dict[str, str], Any]:
    sent = {**(bearer(secret) if secret else {}), **headers}
    async with http.post(gw.url + path, json=body or chat(), headers=sent) as r:
        return r.status, dict(r.headers), await r.json()


async def get(http: aiohttp.ClientSession, gw: RunningGateway, path: str,
              secret: str | None) -> tuple[int, str]:
    async with http.get(gw.url + path, headers=bearer(secret) if secret else {}) as r:
        return r.status, await r.text()


async def raw_request(gw: RunningGateway, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One request with the exact header bytes given (no client library cleans them)."""
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                 + body)
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line, _, _ = answer.partition(b"\r\n")
    return int(status_line.split()[1]), answer


# -- a wiped Redis never opens a keyed fleet ---------------------------------------------------

def redis_config(mock: Any, server: RedisServer, prefix: str, **server_section: Any) -> Any:
    return make_config([backend(mock)], server={**SERVER, **server_section},
                       redis={"url": server.url, "prefix": prefix,
                              "snapshot_interval_seconds": 0.05, "timeout_seconds": 2})


async def test_a_wiped_redis_keeps_a_keyed_fleet_closed_and_says_so(
        own_redis: RedisServer, redis_prefix: str, mock_backend: MockFactory,
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend()
    gw = await gateway(redis_config(mock, own_redis, redis_prefix), ENV)
    async with http.post(gw.url + "/admin/keys", json={"name": "carol"},
                         headers=bearer(ADMIN)) as r:
        secret = (await r.json())["secret"]
    await until(lambda: gw.gateway.store.tenant_records().version > 0)
    assert (await ask(http, gw, None))[0] == 401
    own_redis.client().flushall()
    await until(lambda: gw.gateway.store.tenant_records().version == 0)
    for _ in range(5):
        assert (await ask(http, gw, None))[0] == 401  # never open again
    assert (await ask(http, gw, secret))[0] == 200  # the last key table is kept
    _status, health = await get(http, gw, "/health", None)
    assert json.loads(health)["tenancy"]["store_lost_keys"] is True
    assert json.loads(health)["status"] == "degraded"


async def test_auth_required_keeps_a_fresh_replica_closed_on_an_empty_store(
        own_redis: RedisServer, redis_prefix: str, mock_backend: MockFactory,
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend()
    gw = await gateway(redis_config(mock, own_redis, redis_prefix, auth="required"), ENV)
    status, _, answer = await ask(http, gw, None)
    assert status == 401
    assert answer["error"]["code"] == "invalid_api_key"


async def test_auth_required_on_a_fleet_with_no_key_at_all_is_refused_at_start() -> None:
    from nexus.config.errors import ConfigError
    from nexus.http.auth import Tenancy
    from nexus.store.memory import MemoryStore
    config = make_config([{"name": "m", "url": "http://127.0.0.1:1"}],
                         server={"auth": "required"})
    with pytest.raises(ConfigError, match=r"server\.auth"):
        Tenancy(config, MemoryStore(), {})


# -- limits keyed by what the gateway chooses ------------------------------------------------

@pytest.mark.parametrize("on_redis", [False, True])
async def test_a_repeated_request_id_does_not_pass_an_rpm_limit(
        on_redis: bool, request: pytest.FixtureRequest, mock_backend: MockFactory,
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend()
    sections: dict[str, Any] = {}
    if on_redis:
        server = request.getfixturevalue("own_redis")
        sections["redis"] = {"url": server.url, "prefix": request.getfixturevalue(
            "redis_prefix"), "rate_allowances": False}
    config = make_config([backend(mock)], server=SERVER, **sections)
    config.keys = [_key("limited", rpm=10)]
    gw = await gateway(config, ENV)
    statuses = [(await ask(http, gw, "limited", **{"X-Request-Id": "fixed"}))[0]
                for _ in range(100)]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 90
    parallel = await asyncio.gather(*(ask(http, gw, "limited", **{"X-Request-Id": "fixed"})
                                      for _ in range(8)))
    assert {p[0] for p in parallel} == {429}


def _key(name: str, **fields: Any) -> Any:
    import msgspec

    from nexus.config.schema import KeyConfig
    return msgspec.convert({"name": name, "secret_sha256": sha256_of(name), **fields},
                           KeyConfig)


# -- client-caused failures are the client's -------------------------------------------------

HOSTILE_VALUES = ["中文".encode(), b"\xff\xfe", "x\u202ey".encode()]


@pytest.mark.parametrize("kind", ["anthropic", "openai", "generic", "ollama", "vllm"])
async def test_no_header_a_client_sends_takes_a_backend_down(
        kind: str, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("target", flavor="ollama" if kind == "ollama" else "openai")
    extra = {"api_key_env": "ANTHROPIC_API_KEY"} if kind == "anthropic" else \
        {"api_key_env": "OAI"} if kind == "openai" else {}
    config = make_config([backend(mock, type=kind, models=["mock-model"], **extra)])
    gw = await gateway(config, ENV)
    body = json.dumps(chat()).encode()
    for value in HOSTILE_VALUES * 3:
        for name in (b"anthropic-beta", b"anthropic-version", b"X-Request-Id",
                     b"traceparent", b"User-Agent", b"X-Nexus-Priority"):
            for path in (b"/v1/chat/completions", b"/v1/messages"):
                status, _ = await raw_request(
                    gw, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n"
                    b"Content-Type: application/json\r\n" + name + b": " + value + b"\r\n",
                    body if path.endswith(b"completions") else json.dumps(
                        {"model": "mock-model", "max_tokens": 5,
                         "messages": [{"role": "user", "content": "hi"}]}).encode())
                assert status in (200, 400), (name, value, path, status)
    target = gw.gateway.registry.get("target")
    assert target is not None
    assert target.health.state.value == "healthy"
    assert (await ask(http, gw, None))[0] == 200


# -- secrets never leave the process ---------------------------------------------------------

@pytest.mark.parametrize("url", ["http://user:s3cr3t-pw@127.0.0.1:1",
                                 "http://127.0.0.1:1/v1?api_key=s3cr3t-pw"])
async def test_a_backend_url_credential_never_reaches_a_client(
        url: str, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    config = make_config([{"name": "down", "url": url, "type": "generic",
                           "models": ["mock-model"]}], server=SERVER)
    gw = await gateway(config, ENV)
    await until(lambda: gw.gateway.registry.get("down").health.state.value == "unhealthy"
                if gw.gateway.registry.get("down") else False, within=30)
    answers = [json.dumps((await ask(http, gw, None))[2]),
               json.dumps((await ask(http, gw, None, path="/v1/routing/explain"))[2])]
    for path in ("/v1/stats", "/health", "/v1/models", "/metrics", "/dashboard/api/state"):
        answers.append((await get(http, gw, path, ADMIN))[1])
    for text in answers:
        assert "s3cr3t-pw" not in text


# -- tenant isolation on every read endpoint -------------------------------------------------

@pytest.fixture
async def two_tenants(mock_backend: MockFactory, gateway: GatewayFactory,
                      http: aiohttp.ClientSession) -> RunningGateway:
    mock = await mock_backend()
    paid = await mock_backend("paid")
    price = {"input": 1.0, "output": 2.0}
    config = make_config([backend(paid, type="openai", api_key_env="OAI", models=["gpt-4o"],
                                  pricing={"gpt-4o": price}), backend(mock)], server=SERVER)
    import msgspec

    from nexus.config.schema import TeamConfig
    config.teams = [msgspec.convert({"name": "red-team"}, TeamConfig),
                    msgspec.convert({"name": "blue-team"}, TeamConfig)]
    config.keys = [_key("alice", team="red-team"), _key("bob", team="blue-team")]
    gw = await gateway(config, ENV)
    for name in ("alice", "bob"):
        assert (await ask(http, gw, name, chat("gpt-4o")))[0] == 200
    return gw


async def test_a_client_key_sees_only_its_own_key_and_team(
        two_tenants: RunningGateway, http: aiohttp.ClientSession) -> None:
    for path in ("/v1/stats", "/v1/budget"):
        status, text = await get(http, two_tenants, path, "alice")
        assert status == 200, text
        assert "alice" in text
        assert "red-team" in text
        assert "bob" not in text
        assert "blue-team" not in text


async def test_the_admin_key_reads_every_tenant_and_the_client_endpoints(
        two_tenants: RunningGateway, http: aiohttp.ClientSession) -> None:
    for path in ("/v1/stats", "/v1/budget"):
        status, text = await get(http, two_tenants, path, ADMIN)
        assert status == 200, text
        assert "alice" in text
        assert "bob" in text
    assert (await get(http, two_tenants, "/v1/models", ADMIN))[0] == 200
    status, _, _ = await ask(http, two_tenants, ADMIN, path="/v1/routing/explain")
    assert status == 200


async def test_per_tenant_metrics_go_only_to_an_authorised_scraper(
        two_tenants: RunningGateway, http: aiohttp.ClientSession) -> None:
    status, open_text = await get(http, two_tenants, "/metrics", None)
    assert status == 200
    assert "nexus_requests_total" in open_text or "nexus_backend" in open_text
    assert "alice" not in open_text
    assert "red-team" not in open_text
    assert "alice" not in (await get(http, two_tenants, "/metrics", "alice"))[1]
    for secret in (ADMIN, METRICS):
        status, text = await get(http, two_tenants, "/metrics", secret)
        assert status == 200
        assert "alice" in text
        assert "bob" in text


# -- small holes -----------------------------------------------------------------------------

async def test_a_non_utf8_authorization_header_is_a_401(
        two_tenants: RunningGateway) -> None:
    status, answer = await raw_request(
        two_tenants, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nAuthorization: Bearer \xff\xfe\xc3\r\n",
        json.dumps(chat()).encode())
    assert status == 401
    assert b"invalid_api_key" in answer


async def test_a_brace_bomb_model_glob_is_refused_at_creation(
        two_tenants: RunningGateway, http: aiohttp.ClientSession) -> None:
    async with http.post(two_tenants.url + "/admin/keys", headers=bearer(ADMIN),
                         json={"name": "bomb", "models": ["{a,b}" * 10]}) as r:
        assert r.status == 400
        error = (await r.json())["error"]
    assert error["param"] == "models"
    assert "expands" in error["message"]


async def test_explain_honours_the_keys_model_globs(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mock = await mock_backend(models=["mock-model", "other"])
    config = make_config([backend(mock)], server=SERVER)
    config.keys = [_key("narrow", models=["other"])]
    gw = await gateway(config, ENV)
    status, _, answer = await ask(http, gw, "narrow", path="/v1/routing/explain")
    assert status == 403
    assert answer["error"]["code"] == "model_not_allowed"


@pytest.mark.parametrize("stream", [False, True])
async def test_an_upstream_model_name_with_control_characters_is_answered_cleanly(
        stream: bool, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    evil = "evil\r\nSet-Cookie: stolen=1\x00"
    mock = await mock_backend(models=[evil, "mock-model"])
    gw = await gateway(make_config([backend(mock)]), ENV)
    async with http.post(gw.url + "/v1/chat/completions", json=chat(evil, stream=stream)) as r:
        await r.read()
        assert r.status in (200, 404)
        assert "Set-Cookie" not in r.headers
        for value in r.headers.values():
            assert "\r" not in value
            assert "\n" not in value
            assert "\x00" not in value
