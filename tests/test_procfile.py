"""The Procfile's cluster, started with honcho: a request through each replica."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import aiohttp
import pytest

from tests.support.exclusive import one_worker_at_a_time
from tests.support.helpers import chat

ROOT = Path(__file__).resolve().parents[1]
PORTS = {"redis": 6390, "gpu1": 9101, "gpu2": 9102, "nexus1": 8001, "nexus2": 8002,
         "nexus3": 8003}


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def procfile_cluster(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
                     ) -> Iterator[subprocess.Popen[bytes]]:
    # The Procfile's ports are fixed: one worker at a time runs its cluster.
    with one_worker_at_a_time("procfile", tmp_path_factory):
        taken = [f"{name}:{port}" for name, port in PORTS.items() if port_taken(port)]
        assert not taken, f"the Procfile's ports are in use: {taken}"
        process, log = start_honcho(tmp_path)
        yield process
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
        wait_ports_free()


def start_honcho(tmp_path: Path) -> tuple[subprocess.Popen[bytes], IO[bytes]]:
    bin_dir = str(Path(sys.executable).parent)  # nexus, python and honcho of this venv
    # No activated venv: PATH without the venv's bin, as in an operator's fresh shell.
    path = ":".join(p for p in os.environ["PATH"].split(":") if p != bin_dir)
    env = {**os.environ, "PATH": path, "NEXUS_VENV": str(Path(bin_dir).parent),
           "NEXUS_REDIS_DIR": str(tmp_path / "redis")}
    env.pop("VIRTUAL_ENV", None)
    log = open(tmp_path / "honcho.log", "wb")  # noqa: SIM115 - closed by the fixture
    process = subprocess.Popen([os.path.join(bin_dir, "honcho"), "start", "-f", "Procfile"],
                               cwd=ROOT, env=env, stdout=log, stderr=log,
                               start_new_session=True)
    return process, log


def wait_ports_free(within: float = 30.0) -> None:
    """A child that outlives honcho by a moment still holds its port: the next holder of
    the lock finds them all free."""
    deadline = time.monotonic() + within
    while any(port_taken(port) for port in PORTS.values()):
        assert time.monotonic() < deadline, "the Procfile's processes did not let go"
        time.sleep(0.1)


async def test_each_replica_of_the_procfile_cluster_routes_a_request(
        procfile_cluster: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for port in (8001, 8002, 8003):
            url = f"http://127.0.0.1:{port}"
            await wait_healthy(http, url, procfile_cluster)
            async with http.post(url + "/v1/chat/completions",
                                 json=chat("llama3:8b")) as response:
                assert response.status == 200, await response.text()
                assert response.headers["X-Nexus-Backend"] in {"gpu-1", "gpu-2"}
            async with http.get(url + "/health") as response:
                health = await response.json()
            assert health["store"] == {**health["store"], "kind": "redis", "connected": True}
            assert health["replica"]["id"] == f"nexus-{port - 8000}"


async def wait_healthy(http: aiohttp.ClientSession, url: str,
                       process: subprocess.Popen[bytes], within: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        assert process.poll() is None, "honcho stopped: see honcho.log in the test's tmp dir"
        try:
            async with http.get(url + "/health") as response:
                health = await response.json()
                if health["backends"]["healthy"] == 2 and health["store"]["connected"]:
                    return
        except (aiohttp.ClientError, KeyError):
            pass
        assert loop.time() < deadline, f"{url} did not become healthy"
        await asyncio.sleep(0.1)


def documented_commands() -> list[str]:
    """Every shell command in README and docs/ that talks to the Procfile's fleet
    (its Redis on 6390, its replicas on 8001-8003), continuation lines joined."""
    commands = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for block in re.findall(r"```sh\n(.*?)```", doc.read_text(), re.DOTALL):
            for command in block.replace("\\\n", " ").splitlines():
                command = command.split("  #")[0].strip()
                if re.search(r"-p 6390|localhost:800[123]", command):
                    commands.append(command)
    return commands


def test_the_docs_have_commands_for_the_fleet() -> None:
    commands = documented_commands()
    assert sum("redis-cli -p 6390" in c for c in commands) >= 10
    assert any("llama3:8b" in c for c in commands)


async def test_every_documented_command_runs_against_the_procfile_cluster(
        procfile_cluster: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as http:
        for port in (8001, 8002, 8003):  # every replica up before the docs' commands run
            await wait_healthy(http, f"http://127.0.0.1:{port}", procfile_cluster)
    for command in documented_commands():
        result = await asyncio.to_thread(subprocess.run, ["bash", "-o", "pipefail", "-c",
                                                          command], capture_output=True,
                                         text=True, timeout=30)
        assert result.returncode == 0, (command, result.stderr)
        assert not re.search(r"^\(error\)|^ERR|\"error\": \{|\"type\": ?\"error\"",
                             result.stdout, re.MULTILINE), \
            (command, result.stdout)


def test_readme_says_how_to_get_what_its_fleet_command_runs() -> None:
    """honcho comes with the `fleet` extra: the README's command installs it first."""
    import tomllib
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    assert any(d.startswith("honcho") for d in extras["fleet"])
    assert any(d.startswith("uvloop") for d in extras["fast"])
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "-e '.[fleet]' && .venv/bin/honcho start" in readme
    assert "`.[fast]` adds uvloop" in readme
