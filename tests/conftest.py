"""Fixtures: mock backends and gateways on real loopback ports."""

from __future__ import annotations

import asyncio
import gc
import io
import uuid
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from nexus.config.schema import Config
from nexus.http.app import create_app
from nexus.http.connections import GatewayRunner
from nexus.http.context import EDGE, GATEWAY
from tests.support.helpers import GatewayFactory, MockFactory, RunningGateway
from tests.support.mock_backend import MockBackend
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import RedisClusterServers, Sentinels


@pytest.fixture(autouse=True)
def collect_garbage_after() -> Iterator[None]:
    """Run the collector as each test ends (after its event loop closed), so whatever a
    test leaves unclosed is reported against that test, not a later one."""
    yield
    gc.collect()


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
        runner = GatewayRunner(app, app[EDGE], access_log=None, shutdown_timeout=0.5,
                               keepalive_timeout=config.server.idle_timeout_seconds)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return RunningGateway(f"http://127.0.0.1:{port}", app[GATEWAY], app, runner)

    yield start
    for runner in reversed(runners):
        if runner.server is not None:  # not stopped by the test already
            await _stopped_within(runner.cleanup(), STOP_WITHIN_SECONDS)


STOP_WITHIN_SECONDS = 120.0  # a bound only: a replica that cannot stop fails, never hangs


async def _stopped_within(cleanup: Coroutine[Any, Any, None], seconds: float) -> None:
    """Stop a replica; one that will not stop fails the test with what it waits on."""
    try:
        await asyncio.wait_for(cleanup, seconds)
    except TimeoutError:
        stacks = []
        for task in asyncio.all_tasks():
            out = io.StringIO()
            task.print_stack(file=out)
            stacks.append(out.getvalue())
        pytest.fail("a replica did not stop; its tasks:\n" + "\n".join(stacks))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


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
