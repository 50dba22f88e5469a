"""Model placement: load, unload and migrate operations, one per backend fleet-wide,
with their state in Redis (any replica answers) or memory; the Lifecycle stage keeps
requests off a backend while its model loads and sends them the moment it is ready;
a replica that dies mid-operation does not leave it running forever."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import msgspec
import pytest

from nexus.fleet.placement import Operation
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
from tests.support.mock_backend import MockBackend
from tests.support.redis_server import RedisServer

FAST = {"operation_timeout_seconds": 30, "sync_interval_seconds": 0.05}


async def call(http: aiohttp.ClientSession, gw: RunningGateway, method: str, path: str,
               body: Any = None, **headers: str) -> tuple[int, dict[str, Any]]:
    async with http.request(method, gw.url + path, json=body, headers=headers) as r:
        return r.status, await r.json()


async def finished(http: aiohttp.ClientSession, gw: RunningGateway,
                   operation_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        return (await call(http, gw, "GET", f"/v1/models/operations/{operation_id}"))[1]

    return await eventually(read, lambda op: op["state"] != "running", within=30)


async def fleet(gateway: GatewayFactory, redis: dict[str, Any] | None,
                *mocks: tuple[MockBackend, dict[str, Any]],
                replicas: int = 2, **sections: Any) -> list[RunningGateway]:
    backends = [backend(m, **fields) for m, fields in mocks]
    extra = {"lifecycle": FAST, **({"redis": redis} if redis else {}), **sections}
    return [await gateway(make_config(backends, **extra)) for _ in range(replicas)]


async def test_an_ollama_load_is_followed_from_the_other_replica(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        redis_server: RedisServer, redis_prefix: str) -> None:
    ollama = await mock_backend("gpu", flavor="ollama", hold_loads=True)
    one, two = await fleet(gateway, {"url": redis_server.url, "prefix": redis_prefix},
                           (ollama, {"type": "ollama"}))
    status, operation = await call(http, one, "POST", "/v1/models/load",
                                   {"model": "qwen3:8b", "backend": "gpu"})
    assert status == 202, operation
    assert (operation["kind"], operation["backend"], operation["state"]) == \
        ("load", "gpu", "running")

    async def read() -> dict[str, Any]:
        return (await call(http, two, "GET", f"/v1/models/operations/{operation['id']}"))[1]

    # the pull's bytes, as Ollama streamed them, read from the other replica
    await eventually(read, lambda op: op["progress"] == 0.5, within=30)
    status, refused = await call(http, two, "POST", "/v1/models/load",
                                 {"model": "other", "backend": "gpu"})
    assert status == 409, refused  # one operation per backend, fleet-wide
    ollama.release.set()
    done = await finished(http, two, operation["id"])
    assert (done["state"], done["progress"], done["error"]) == ("done", 1.0, None)
    assert "qwen3:8b" in ollama.behaviour.loaded  # pulled, then loaded with keep_alive
    for replica in (one, two):  # routable at once here, and at the next sync there
        await until(lambda r=replica: "qwen3:8b" in r.gateway.registry.get("gpu").models)
        async with http.post(replica.url + "/v1/chat/completions",
                             json=chat("qwen3:8b")) as r:
            assert r.status == 200
    _, listing = await call(http, two, "GET", "/v1/models/operations")
    assert listing["data"][0]["id"] == operation["id"]


async def test_the_lifecycle_stage_keeps_requests_off_a_loading_backend(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    router = await mock_backend("router", flavor="llama-router", models=["m"], loaded=[],
                                hold_loads=True)
    (gw,) = await fleet(gateway, None, (router, {"type": "llamacpp"}), replicas=1)
    _, operation = await call(http, gw, "POST", "/v1/models/load",
                              {"model": "m", "backend": "router"})
    await until(lambda: "m" in gw.gateway.registry.get("router").transitions)
    async with http.post(gw.url + "/v1/chat/completions", json=chat("m")) as r:
        refused = await r.json()
        assert r.status == 503
        assert int(r.headers["Retry-After"]) >= 1
    (group,) = refused["error"]["rejection_reasons"]
    assert group["stage"] == "LifecycleReconciler"
    assert "loading 'm'" in group["reasons"][0]["reason"]
    assert operation["id"] in group["reasons"][0]["reason"]
    router.release.set()
    done = await finished(http, gw, operation["id"])
    assert done["state"] == "done"
    async with http.post(gw.url + "/v1/chat/completions", json=chat("m")) as r:
        assert r.status == 200  # the moment it is loaded, not minutes later


async def test_a_load_the_server_fails_is_a_failed_operation_with_its_words(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    router = await mock_backend("router", flavor="llama-router", models=["broken"],
                                loaded=[], pull_fails=["broken"])
    ollama = await mock_backend("ollama", flavor="ollama", pull_fails=["nope:1b"])
    (gw,) = await fleet(gateway, None, (router, {"type": "llamacpp"}),
                        (ollama, {"type": "ollama"}), replicas=1)
    for body, words in (({"model": "broken", "backend": "router"}, "exit code 1"),
                        ({"model": "nope:1b", "backend": "ollama"}, "file does not exist")):
        _, operation = await call(http, gw, "POST", "/v1/models/load", body)
        done = await finished(http, gw, operation["id"])
        assert done["state"] == "failed"
        assert words in done["error"]
    assert not gw.gateway.registry.get("router").transitions  # nothing left in transition


async def test_vllm_lora_adapters_load_where_the_server_allows(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    vllm = await mock_backend("vllm", flavor="vllm")
    (gw,) = await fleet(gateway, None, (vllm, {"type": "vllm", "engine": "off"}), replicas=1)
    body = {"model": "sql-lora", "backend": "vllm", "path": "/adapters/sql"}
    _, operation = await call(http, gw, "POST", "/v1/models/load", body)
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" in (await finished(http, gw, operation["id"]))[
        "error"]
    vllm.set(runtime_lora=True)
    _, operation = await call(http, gw, "POST", "/v1/models/load", body)
    assert (await finished(http, gw, operation["id"]))["state"] == "done"
    sent = [r for r in vllm.received if r.path == "/v1/load_lora_adapter"][-1]
    assert sent.body == {"lora_name": "sql-lora", "lora_path": "/adapters/sql"}
    status, unloading = await call(http, gw, "DELETE", "/v1/models/sql-lora?backend=vllm")
    assert status == 202
    assert (await finished(http, gw, unloading["id"]))["state"] == "done"


async def test_an_unloaded_adapter_leaves_every_replica_and_an_old_load_does_not_return(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        redis_server: RedisServer, redis_prefix: str) -> None:
    """vLLM lists only the adapters it holds: once unloaded, no replica routes to it. And
    a load finished long ago is applied once: a later health check knows better."""
    vllm = await mock_backend("vllm", flavor="vllm", models=["base"], runtime_lora=True)
    one, two = await fleet(gateway, {"url": redis_server.url, "prefix": redis_prefix},
                           (vllm, {"type": "vllm", "engine": "off"}))

    def serves(replica: RunningGateway) -> bool:
        return "sql-lora" in replica.gateway.registry.get("vllm").models

    _, loading = await call(http, one, "POST", "/v1/models/load",
                            {"model": "sql-lora", "backend": "vllm"})
    assert (await finished(http, one, loading["id"]))["state"] == "done"
    await until(lambda: serves(two))  # the other replica's next sync
    _, unloading = await call(http, one, "DELETE", "/v1/models/sql-lora?backend=vllm")
    assert (await finished(http, two, unloading["id"]))["state"] == "done"
    assert not serves(one)  # at once where it ran
    await until(lambda: not serves(two))
    async with http.post(two.url + "/v1/chat/completions", json=chat("sql-lora")) as r:
        assert r.status == 404, await r.text()
    await two.gateway.placement.sync()  # the load, older, does not bring it back
    assert not serves(two)

    _, again = await call(http, one, "POST", "/v1/models/load",
                          {"model": "sql-lora", "backend": "vllm"})
    assert (await finished(http, one, again["id"]))["state"] == "done"
    await until(lambda: serves(two))
    vllm.set(models=["base"])  # the server restarted without the adapter
    backend_two = two.gateway.registry.get("vllm")
    await two.gateway.checker.check_one(backend_two)
    assert not serves(two)
    await two.gateway.placement.sync()
    assert not serves(two)  # the health check is newer than the load


async def test_a_replica_started_later_believes_the_server_over_an_old_load(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        redis_server: RedisServer, redis_prefix: str) -> None:
    vllm = await mock_backend("vllm", flavor="vllm", models=["base"], runtime_lora=True)
    fields = {"type": "vllm", "engine": "off"}
    redis = {"url": redis_server.url, "prefix": redis_prefix}
    (one,) = await fleet(gateway, redis, (vllm, fields), replicas=1)
    _, loading = await call(http, one, "POST", "/v1/models/load",
                            {"model": "sql-lora", "backend": "vllm"})
    assert (await finished(http, one, loading["id"]))["state"] == "done"
    vllm.set(models=["base"])  # then the server restarted without the adapter
    (two,) = await fleet(gateway, redis, (vllm, fields), replicas=1)
    await two.gateway.placement.sync()
    assert "sql-lora" not in two.gateway.registry.get("vllm").models
    _, again = await call(http, one, "POST", "/v1/models/load",
                          {"model": "sql-lora", "backend": "vllm"})
    assert (await finished(http, one, again["id"]))["state"] == "done"
    await until(lambda: "sql-lora" in two.gateway.registry.get("vllm").models)  # newer


async def test_a_migration_loads_on_the_target_then_unloads_the_source(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    source = await mock_backend("a", flavor="ollama", models=["llama3:8b"])
    target = await mock_backend("b", flavor="ollama", models=["other"])
    (gw,) = await fleet(gateway, None, (source, {"type": "ollama"}),
                        (target, {"type": "ollama"}), replicas=1)
    status, operation = await call(http, gw, "POST", "/v1/models/migrate",
                                   {"model": "llama3:8b", "from": "a", "to": "b"})
    assert status == 202
    assert (operation["from"], operation["to"]) == ("a", "b")
    assert (await finished(http, gw, operation["id"]))["state"] == "done"
    assert "llama3:8b" in target.behaviour.loaded
    assert "llama3:8b" not in source.behaviour.loaded
    order = [(m.name, r.path, r.body.get("keep_alive")) for m in (source, target)
             for r in m.received if r.path in ("/api/pull", "/api/generate")]
    assert ("b", "/api/generate", "30m") in order
    assert ("a", "/api/generate", 0) in order


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "m", "backend": "nowhere"}, 404, "backend"),
    ({"model": "m", "backend": "plain"}, 501, "backend"),
    ({"model": "m"}, 400, "backend"),
    ({"model": "m", "backend": "x" * 300}, 400, "backend"),
])
async def test_bad_operations_get_clear_answers(
        body: dict[str, Any], status: int, param: str, mock_backend: MockFactory,
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    plain = await mock_backend("plain")
    (gw,) = await fleet(gateway, None, (plain, {"type": "generic"}), replicas=1)
    answer_status, answer = await call(http, gw, "POST", "/v1/models/load", body)
    assert answer_status == status, answer
    assert answer["error"]["param"] == param
    if status == 501:
        assert "'generic'" in answer["error"]["message"]
    status, _missing = await call(http, gw, "GET", "/v1/models/operations/op_forged")
    assert status == 404


async def test_the_admin_key_is_required_once_keys_exist(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    ollama = await mock_backend("gpu", flavor="ollama")
    config = make_config([backend(ollama, type="ollama")], lifecycle=FAST,
                         server={"admin_key_env": "ADMIN"},
                         keys=[{"name": "alice", "secret_env": "ALICE"}])
    gw = await gateway(config, {"ADMIN": "admin-secret-0000000", "ALICE": "sk-alice-00000000"})
    body = {"model": "llama3:8b", "backend": "gpu"}
    for headers in ({}, {"Authorization": "Bearer sk-alice-00000000"}):
        status, _ = await call(http, gw, "POST", "/v1/models/load", body, **headers)
        assert status == 401
        status, _ = await call(http, gw, "GET", "/v1/models/operations", **headers)
        assert status == 401
    status, _ = await call(http, gw, "POST", "/v1/models/load", body,
                           Authorization="Bearer admin-secret-0000000")
    assert status == 202


async def test_a_replica_that_dies_mid_operation_does_not_leave_it_running(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        redis_server: RedisServer, redis_prefix: str) -> None:
    ollama = await mock_backend("gpu", flavor="ollama")
    (gw,) = await fleet(gateway, {"url": redis_server.url, "prefix": redis_prefix},
                        (ollama, {"type": "ollama"}), replicas=1,
                        **{"lifecycle": {"operation_timeout_seconds": 1,
                                         "sync_interval_seconds": 0.05}})
    store = gw.gateway.store
    # What a replica killed mid-pull leaves: its claim and a running record, no more.
    now = time.time()
    dead = Operation(id="op_dead", kind="load", model="llama3:8b", backends=["gpu"],
                     started_at=now, heartbeat_at=now, replica="killed-replica")
    assert await store.claim_backend("gpu", dead.id, 1000) is None
    await store.save_operation(dead.id, msgspec.json.encode(dead), now)
    await until(lambda: "llama3:8b" in gw.gateway.registry.get("gpu").transitions)
    stale = await finished(http, gw, "op_dead")  # read as failed once the timeout passes
    assert stale["state"] == "failed"
    assert "killed-replica" in stale["error"]
    await until(lambda: not gw.gateway.registry.get("gpu").transitions)

    async def start() -> int:  # the claim lapses with its holder: a new one may start
        return (await call(http, gw, "POST", "/v1/models/load",
                           {"model": "llama3:8b", "backend": "gpu"}))[0]

    await eventually(start, lambda status: status == 202, within=30)
