"""Real replica processes (`python -m nexus serve`) sharing one redis-server."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return str(value)


def to_toml(tables: dict[str, dict[str, Any]], backends: list[dict[str, Any]]) -> str:
    """Just enough TOML for test configs: tables of scalars, and [[backends]]."""
    lines: list[str] = []
    for name, table in tables.items():
        lines.append(f"[{name}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items()]
    for backend in backends:
        pricing = backend.pop("pricing", {})
        lines.append("[[backends]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in backend.items()]
        for model, price in pricing.items():
            lines.append(f'[backends.pricing."{model}"]')
            lines += [f"{k} = {v}" for k, v in price.items()]
    return "\n".join(lines) + "\n"


class Replica:
    def __init__(self, config: Path, replica_id: str, env: dict[str, str] | None = None) -> None:
        self.config = config
        self.replica_id = replica_id
        self.port = free_port()
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.log = config.parent / f"{replica_id}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Replica:
        env = {**os.environ, **self.env, "NEXUS_CONFIG": str(self.config),
               "NEXUS_PORT": str(self.port), "NEXUS_REPLICA_ID": self.replica_id}
        with open(self.log, "ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "nexus", "serve"], cwd=ROOT,
                                            env=env, stdout=log, stderr=log)
        return self

    async def ready(self, http: aiohttp.ClientSession, within: float = 20.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            assert self.process is not None
            assert self.process.poll() is None, self.log.read_text()
            try:
                async with http.get(self.url + "/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            assert loop.time() < deadline, f"{self.replica_id} did not start"
            await asyncio.sleep(0.05)

    async def health(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        async with http.get(self.url + "/health") as response:
            data: dict[str, Any] = await response.json()
            return data

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        """SIGTERM: a clean shutdown (flushes spend, releases the lease)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


def pause(replica: Replica) -> None:
    """SIGSTOP: the process freezes mid-whatever, as in a long GC pause or a VM stall."""
    assert replica.process is not None
    replica.process.send_signal(signal.SIGSTOP)


def resume(replica: Replica) -> None:
    assert replica.process is not None
    replica.process.send_signal(signal.SIGCONT)
