"""Fixtures: mock backends and gateways on real loopback ports."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
import pytest
from aiohttp import web

from nexus.config.schema import Config
from nexus.config.validate import validate
from nexus.server.app import create_app
from nexus.server.gateway import Gateway
from nexus.server.handlers import GATEWAY
from tests.mock_backend import MockBackend
from tests.redis_server import RedisServer
from tests.redis_topologies import RedisClusterServers, Sentinels

T = TypeVar("T")
QUIET_HEALTH = {"interval_seconds": 3600, "timeout_seconds": 2}


def make_config(backends: list[dict[str, Any]], **sections: Any) -> Config:
    """A validated Config from plain dicts, with health checks that only run at start."""
    raw: dict[str, Any] = {"backends": backends, "health_check": dict(QUIET_HEALTH)}
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    config = msgspec.convert(raw, Config)
    validate(config, "<test>")
    return config


def backend(mock: MockBackend, **fields: Any) -> dict[str, Any]:
    return {"name": mock.name, "url": mock.url, "type": "generic", **fields}


@dataclass
class RunningGateway:
    url: str
    gateway: Gateway
    app: web.Application
    runner: web.AppRunner | None = None

    async def stop(self) -> None:
        """Shut this replica down as SIGTERM would (the fixture skips it afterwards)."""
        if self.runner is not None and self.runner.server is not None:
            await self.runner.cleanup()


@pytest.fixture(autouse=True)
def collect_garbage_after() -> Iterator[None]:
    """Run the collector as each test ends (after its event loop closed), so whatever a
    test leaves unclosed is reported against that test, not a later one."""
    yield
    gc.collect()


MockFactory = Callable[..., Awaitable[MockBackend]]
GatewayFactory = Callable[..., Awaitable[RunningGateway]]


@pytest.fixture
async def mock_backend() -> AsyncIterator[MockFactory]:
    started: list[MockBackend] = []

    async def start(name: str = "mock", **behaviour: Any) -> MockBackend:
        mock = await MockBackend(name, **behaviour).start()
        started.append(mock)
        return mock

    yield start
    for mock in started:
        mock.release.set()
        await mock.stop()


@pytest.fixture
async def gateway() -> AsyncIterator[GatewayFactory]:
    runners: list[web.AppRunner] = []

    async def start(config: Config, environ: dict[str, str] | None = None) -> RunningGateway:
        app = create_app(config, environ or {})
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return RunningGateway(f"http://127.0.0.1:{port}", app[GATEWAY], app, runner)

    yield start
    for runner in reversed(runners):
        if runner.server is not None:  # not stopped by the test already
            await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def chat(model: str = "mock-model", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def post(http: aiohttp.ClientSession, url: str, body: object,
               **headers: str) -> tuple[int, dict[str, str], dict[str, object]]:
    async with http.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
        return r.status, dict(r.headers), await r.json()


async def read_sse(response: aiohttp.ClientResponse) -> list[str]:
    text = (await response.read()).decode()
    return [e.removeprefix("data: ") for e in text.split("\n\n") if e.strip()]


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    """Wait for a condition on local state, polling with a deadline (never a fixed sleep)."""
    async def probe() -> bool:
        return condition()

    await eventually(probe, bool, within)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the session; tests keep apart by key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, for tests that kill or restart it."""
    server = RedisServer(tmp_path).start()
    yield server
    server.kill()


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest) -> str:
    return f"test-{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool],
                     within: float = 5.0) -> T:
    """Ask `probe` until `done` holds of its answer, and return that answer; fail with
    the last answer once `within` seconds have passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not done(value := await probe()):
        assert loop.time() < deadline, f"not reached in {within}s; last value: {value!r}"
        await asyncio.sleep(0.02)
    return value


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterServers]:
    """Three masters in a Redis Cluster, for the session; tests keep apart by prefix."""
    cluster = RedisClusterServers(tmp_path_factory.mktemp("cluster")).start()
    yield cluster
    cluster.kill()


@pytest.fixture
def sentinels(tmp_path: Path) -> Iterator[Sentinels]:
    """A master, a replica and three sentinels of this test's own (it kills the master)."""
    made = Sentinels(tmp_path).start()
    yield made
    made.kill()
