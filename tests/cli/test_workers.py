"""`nexus serve --workers N`: N replicas on one port, restarted when they die, drained
on SIGTERM; refused without Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import redis.asyncio as redis

from nexus.budget.month import month_of
from nexus.store.keys import Keys
from tests.support.cluster import ROOT, to_toml
from tests.support.helpers import MockFactory, chat, eventually
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow


def test_more_than_one_worker_without_redis_is_refused(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    result = subprocess.run([sys.executable, "-m", "nexus", "serve", "--workers", "2"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--workers" in result.stderr
    assert "[redis]" in result.stderr


@pytest.fixture
async def workers(own_redis: RedisServer, redis_prefix: str, tmp_path: Path,
                  mock_backend: MockFactory) -> AsyncIterator[Any]:
    paid = await mock_backend("paid", models=["m"], usage_prompt_tokens=1,
                              usage_completion_tokens=50, delay=0.2)
    port = free_port()
    config = tmp_path / "nexus.toml"
    config.write_text(to_toml(
        {"server": {"port": port}, "redis": {"url": own_redis.url, "prefix": redis_prefix},
         "fleet": {"replica_id": "box"}},
        [{"name": "paid", "url": paid.url, "type": "generic", "models": ["m"],
          "pricing": {"m": {"input": 1.0, "output": 2.0}}}]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEXUS_")}
    log = (tmp_path / "workers.log").open("wb")
    parent = start_workers(config, env, log)
    yield parent, f"http://127.0.0.1:{port}", paid
    if parent.poll() is None:
        parent.send_signal(signal.SIGTERM)
        await asyncio.to_thread(parent.wait, 60)
    log.close()


def start_workers(config: Path, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "nexus", "serve", "--workers", "2",
                             "--config", str(config)], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT)


async def replicas_seen(url: str, count: int = 40) -> dict[str, int]:
    """replica id -> pid, over fresh connections (the kernel spreads them)."""
    seen: dict[str, int] = {}
    for _ in range(count):
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) \
                as http:
            try:
                async with http.get(url + "/health") as response:
                    replica = (await response.json())["replica"]
                    seen[replica["id"]] = replica["pid"]
            except aiohttp.ClientError:
                continue
    return seen


async def test_two_workers_answer_are_restarted_and_drain_on_sigterm(
        workers: Any, own_redis: RedisServer, redis_prefix: str) -> None:
    parent, url, paid = workers
    seen = await eventually(lambda: replicas_seen(url), lambda s: len(s) == 2, within=60)
    assert set(seen) == {"box-w0", "box-w1"}
    os.kill(seen["box-w0"], signal.SIGKILL)  # a worker dies: the parent starts it again
    restarted = await eventually(lambda: replicas_seen(url),
                                 lambda s: len(s) == 2 and s["box-w0"] != seen["box-w0"],
                                 within=60)
    assert restarted["box-w1"] == seen["box-w1"]

    async def one(http: aiohttp.ClientSession) -> int:
        async with http.post(url + "/v1/chat/completions", json=chat("m")) as response:
            await response.read()
            return response.status

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        served = await asyncio.gather(*(one(http) for _ in range(40)))
        assert served == [200] * 40
        in_flight = [asyncio.create_task(one(http)) for _ in range(20)]
        await eventually(lambda: asyncio.sleep(0, len(paid.chat_requests())),
                         lambda n: n >= 60, within=30)  # all 20 reached the backend
        parent.send_signal(signal.SIGTERM)  # every worker drains what it has in flight
        assert await asyncio.gather(*in_flight) == [200] * 20
    assert await asyncio.to_thread(parent.wait, 60) == 0
    client = redis.Redis.from_url(own_redis.url, decode_responses=True)
    try:  # every answered cost is in Redis: 60 requests at 101 micro-USD each
        total = int(await client.get(Keys(redis_prefix).spend_total(month_of())) or 0)
    finally:
        await client.aclose()
    assert total == len(paid.chat_requests()) * 101 == 60 * 101
