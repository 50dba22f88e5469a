"""Backends added and removed at run time: the type asked of the server, kept in the
store so every replica (and one that restarts) serves them; a configured backend is
fixed while the gateway runs; hostile URLs and names are refused."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from nexus.store.errors import StoreError
from tests.fleet.test_placement import FAST, call
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    eventually,
    make_config,
    until,
)
from tests.support.redis_server import RedisServer


async def served(http: aiohttp.ClientSession, gw: RunningGateway, model: str) -> int:
    async with http.post(gw.url + "/v1/chat/completions", json=chat(model)) as r:
        return r.status


@pytest.mark.parametrize(("flavor", "expected"), [
    ("ollama", "ollama"), ("llama-server", "llamacpp"), ("llama-server-props", "llamacpp"),
    ("vllm", "vllm"), ("lmstudio", "lmstudio"), ("openai-only", "generic")])
async def test_add_asks_the_server_what_it_is(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        flavor: str, expected: str) -> None:
    mock = await mock_backend("new", flavor="vllm" if flavor == "openai-only" else flavor,
                              models=["fresh-model"], context_window=4096)
    if flavor == "openai-only":  # an OpenAI-compatible server that is not vLLM
        mock.behaviour.flavor = "sglang"
    gw = await gateway(make_config([], lifecycle=FAST))
    status, added = await call(http, gw, "POST", "/v1/backends",
                               {"url": mock.url, "type": "auto"})
    assert status == 201, added
    assert added["type"] == expected
    assert added["origin"] == "api"
    assert added["models"] == ["fresh-model"]  # checked before the answer
    assert await served(http, gw, "fresh-model") == 200


async def test_an_added_backend_is_served_by_every_replica_and_a_restarted_one(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        redis_server: RedisServer, redis_prefix: str) -> None:
    fixed = await mock_backend("fixed")
    extra = await mock_backend("extra", flavor="ollama", models=["qwen3:8b"])
    config = make_config([backend(fixed)], lifecycle=FAST,
                         redis={"url": redis_server.url, "prefix": redis_prefix})
    one, two = await gateway(config), await gateway(config)
    status, added = await call(http, one, "POST", "/v1/backends",
                               {"url": extra.url, "name": "gpu-extra"})
    assert status == 201, added
    await until(lambda: two.gateway.registry.get("gpu-extra") is not None)

    async def on_two() -> int:
        return await served(http, two, "qwen3:8b")

    await eventually(on_two, lambda s: s == 200, within=10)
    await two.stop()  # a replica that restarts serves it from its first request
    three = await gateway(config)
    assert three.gateway.registry.get("gpu-extra") is not None
    assert await served(http, three, "qwen3:8b") == 200
    status, twice = await call(http, three, "POST", "/v1/backends",
                               {"url": extra.url, "name": "gpu-extra"})
    assert status == 409, twice  # one name, fleet-wide
    status, removed = await call(http, three, "DELETE", "/v1/backends/gpu-extra")
    assert (status, removed["name"]) == (200, "gpu-extra")
    await until(lambda: one.gateway.registry.get("gpu-extra") is None)
    assert await served(http, one, "qwen3:8b") == 404
    _, listed = await call(http, one, "GET", "/v1/backends")
    assert [(b["name"], b["origin"]) for b in listed["data"]] == [("fixed", "config")]


async def test_a_configured_backend_cannot_be_removed_and_says_why(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    fixed = await mock_backend("fixed")
    gw = await gateway(make_config([backend(fixed)], lifecycle=FAST))
    status, refused = await call(http, gw, "DELETE", "/v1/backends/fixed")
    assert status == 409
    assert "configuration file" in refused["error"]["message"]
    status, missing = await call(http, gw, "DELETE", "/v1/backends/nowhere")
    assert (status, missing["error"]["code"]) == (404, "backend_not_found")
    assert gw.gateway.registry.get("fixed") is not None


@pytest.mark.parametrize(("body", "param"), [
    ({"url": "ftp://gpu:21"}, "url"),
    ({"url": "http://user:secret@gpu:8000"}, "url"),  # credentials are config's, never here
    ({"url": "http://gpu:8000/?api_key=secret"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://127.0.0.1:9", "name": "../../etc"}, None),
    ({"url": "http://127.0.0.1:9", "name": "x" * 300}, None),
    ({"url": "http://127.0.0.1:9", "type": "anthropic"}, "type"),
    ({"url": "http://127.0.0.1:9", "type": "auto"}, "url"),  # nothing answers there
    ({"url": "http://127.0.0.1:9", "extra": 1}, None),
    ({"url": "http://127.0.0.1:9", "vram_gb": -8}, "vram_gb"),
    ({"url": "http://127.0.0.1:9", "vram_gb": "24GB"}, "vram_gb"),
])
async def test_hostile_or_careless_additions_get_a_clear_400(
        gateway: GatewayFactory, http: aiohttp.ClientSession, body: dict[str, Any],
        param: str | None) -> None:
    gw = await gateway(make_config([], lifecycle=FAST))
    status, refused = await call(http, gw, "POST", "/v1/backends", body)
    assert status == 400, refused
    if param is not None:
        assert refused["error"]["param"] == param
    assert "secret" not in refused["error"]["message"]
    assert len(gw.gateway.registry) == 0


async def test_the_admin_key_is_needed_to_add_or_remove_once_keys_exist(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    extra = await mock_backend("extra", flavor="ollama")
    config = make_config([], lifecycle=FAST, server={"admin_key_env": "ADMIN"},
                         keys=[{"name": "alice", "secret_env": "ALICE"}])
    gw = await gateway(config, {"ADMIN": "admin-secret-0000000", "ALICE": "sk-alice-00000000"})
    for headers in ({}, {"Authorization": "Bearer sk-alice-00000000"}):
        status, _ = await call(http, gw, "POST", "/v1/backends", {"url": extra.url},
                               **headers)
        assert status == 401
        status, _ = await call(http, gw, "GET", "/v1/fleet/recommendations", **headers)
        assert status == 401
        status, _ = await call(http, gw, "GET", "/v1/backends", **headers)
        assert status == 401  # the fleet's addresses are not a tenant's to read
        status, _ = await call(http, gw, "DELETE", "/v1/backends/anything", **headers)
        assert status == 401
    status, _ = await call(http, gw, "POST", "/v1/backends", {"url": extra.url},
                           Authorization="Bearer admin-secret-0000000")
    assert status == 201


async def test_with_redis_away_an_addition_is_a_503_not_a_half_added_backend(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        own_redis: RedisServer, redis_prefix: str) -> None:
    extra = await mock_backend("extra", flavor="ollama")
    gw = await gateway(make_config([], lifecycle=FAST, redis={
        "url": own_redis.url, "prefix": redis_prefix}))
    own_redis.kill()
    status, refused = await call(http, gw, "POST", "/v1/backends",
                                 {"url": extra.url, "name": "gpu-extra"})
    assert (status, refused["error"]["code"]) == (503, "store_unavailable")
    assert gw.gateway.registry.get("gpu-extra") is None


async def test_a_wiped_redis_takes_the_added_backends_out_everywhere_and_says_so(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        own_redis: RedisServer, redis_prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    """The store is the list: a replica never keeps serving what it no longer holds (nor
    mistakes an unreachable Redis for an empty one), and the log says what went."""
    fixed = await mock_backend("fixed")
    extra = await mock_backend("extra", flavor="ollama", models=["qwen3:8b"])
    config = make_config([backend(fixed)], lifecycle=FAST,
                         redis={"url": own_redis.url, "prefix": redis_prefix})
    one = await gateway(config)
    status, _ = await call(http, one, "POST", "/v1/backends",
                           {"url": extra.url, "name": "gpu-extra"})
    assert status == 201
    own_redis.kill()  # away: what it held stays served
    with pytest.raises(StoreError):
        await one.gateway.roster.sync()
    assert one.gateway.registry.get("gpu-extra") is not None
    own_redis.restart()
    own_redis.client().flushall()  # back, and wiped
    caplog.set_level("INFO", logger="nexus.fleet.roster")
    await until(lambda: one.gateway.registry.get("gpu-extra") is None)
    assert "gpu-extra is no longer in the store" in caplog.text
    assert await served(http, one, "qwen3:8b") == 404
    status, _ = await call(http, one, "POST", "/v1/backends",
                           {"url": extra.url, "name": "gpu-extra"})
    assert status == 201  # added again, into the new store
