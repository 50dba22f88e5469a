"""Installed the way a user installs: a wheel, into a fresh venv, outside the source tree.

Every Redis mode needs the Lua scripts; they must come from inside the wheel.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import venv
from pathlib import Path
from typing import IO

import aiohttp
import pytest
import redis.asyncio as redis

from nexus.budget.month import month_of
from nexus.store.keys import Keys
from tests.support.cluster import ROOT, to_toml
from tests.support.exclusive import one_worker_at_a_time, run_folder
from tests.support.helpers import MockFactory, chat, eventually
from tests.support.redis_server import RedisServer, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with Nexus installed from a freshly built wheel (not editable), built once
    per run: the build writes into the source tree, so workers take turns."""
    with one_worker_at_a_time("wheel", tmp_path_factory):
        where = run_folder(tmp_path_factory) / "wheel"
        bin_dir = where / "venv" / "bin"
        if not (bin_dir / "nexus").exists():
            build_and_install(where)
        return bin_dir


def build_and_install(where: Path) -> None:
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w",
                            str(where / "dist"), str(ROOT)], check=True, capture_output=True,
                           text=True)
    # Data folders are declared as package data: setuptools warns of none of them.
    assert "is absent from the `packages` configuration" not in built.stdout + built.stderr
    (wheel,) = (where / "dist").glob("nexus_gateway-*.whl")
    venv.create(where / "venv", with_pip=True)
    python = where / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True,
                   capture_output=True, cwd=where)


def test_the_wheel_carries_the_lua_scripts(installed: Path) -> None:
    code = ("import nexus, nexus.store.lua as lua; print(nexus.__file__); "
            "print(lua.lua_script('spend').splitlines()[0])")
    out = subprocess.run([str(installed / "python"), "-c", code], check=True,
                         capture_output=True, text=True, cwd=installed).stdout.splitlines()
    assert str(ROOT) not in out[0]  # the installed copy, not the checkout
    assert out[1].startswith("-- Count requests' costs")


async def test_an_installed_gateway_counts_a_paid_request_in_redis(
        installed: Path, own_redis: RedisServer, redis_prefix: str, tmp_path: Path,
        mock_backend: MockFactory) -> None:
    paid = await mock_backend("paid", models=["paid-model"], usage_prompt_tokens=10,
                              usage_completion_tokens=20)
    port = free_port()
    config = tmp_path / "nexus.toml"
    config.write_text(to_toml(
        {"server": {"port": port}, "redis": {"url": own_redis.url, "prefix": redis_prefix}},
        [{"name": "paid", "url": paid.url, "type": "generic", "models": ["paid-model"],
          "pricing": {"paid-model": {"input": 1.0, "output": 2.0}}}]))
    log = (tmp_path / "nexus.log").open("wb")
    process = start_serving(installed, config, log)
    try:
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}"
            await eventually(lambda: _healthy(http, url, process), bool, within=60)
            async with http.post(url + "/v1/chat/completions", json=chat("paid-model")) as r:
                assert r.status == 200, await r.text()
        client = redis.Redis.from_url(own_redis.url, decode_responses=True)
        try:  # the cost is in Redis before the answer leaves: no waiting needed
            total = await client.get(Keys(redis_prefix).spend_total(month_of()))
        finally:
            await client.aclose()
        assert int(total or 0) == 10 * 1 + 20 * 2  # micro-USD at $1 / $2 per million
    finally:
        process.terminate()
        await asyncio.to_thread(process.wait, 30)
        log.close()


def start_serving(installed: Path, config: Path, log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([str(installed / "nexus"), "serve", "--config", str(config)],
                            cwd=config.parent, stdout=log, stderr=subprocess.STDOUT)


async def _healthy(http: aiohttp.ClientSession, url: str,
                   process: subprocess.Popen[bytes]) -> bool:
    assert process.poll() is None, "nexus serve exited: see nexus.log"
    try:
        async with http.get(url + "/health") as response:
            health = await response.json()
            return bool(health["store"]["connected"])
    except aiohttp.ClientError:
        return False


def test_the_wheel_carries_every_package_of_the_tree(installed: Path) -> None:
    packages = sorted("nexus." + p.parent.name for p in (ROOT / "nexus").glob("*/__init__.py"))
    code = "import importlib, sys; [importlib.import_module(m) for m in sys.argv[1:]]"
    subprocess.run([str(installed / "python"), "-c", code, *packages], check=True,
                   capture_output=True, cwd=installed)
