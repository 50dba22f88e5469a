"""Helpers the tests share: configs, a running gateway, requests, and waiting on a condition."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import msgspec
from aiohttp import web

from nexus.config.schema import Config
from nexus.config.validate import validate
from nexus.replica import Gateway
from tests.support.mock_backend import MockBackend

T = TypeVar("T")
QUIET_HEALTH = {"interval_seconds": 3600, "timeout_seconds": 2}


def make_config(backends: list[dict[str, Any]], **sections: Any) -> Config:
    """A validated Config from plain dicts, with health checks that only run at start."""
    raw: dict[str, Any] = {"backends": backends, "health_check": dict(QUIET_HEALTH)}
    for key, value in sections.items():
        raw[key] = value if isinstance(value, list) else {**raw.get(key, {}), **value}
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


MockFactory = Callable[..., Awaitable[MockBackend]]
GatewayFactory = Callable[..., Awaitable[RunningGateway]]


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
