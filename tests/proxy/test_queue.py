"""Requests that find no free capacity wait in a bounded priority queue, then go on."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import pytest

from nexus.config.schema import QueueConfig
from nexus.proxy.waiting import QueueFull, WaitQueue
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
    post,
    until,
)
from tests.support.mock_backend import MockBackend


async def test_higher_priority_wakes_first_and_ties_keep_arrival_order() -> None:
    queue = WaitQueue(QueueConfig(max_size=10, max_wait_seconds=30))
    woke: list[str] = []

    async def waiter(name: str, priority: int) -> None:
        assert await queue.wait(queue.ticket(priority))
        woke.append(name)

    tasks = [asyncio.create_task(waiter(n, p)) for n, p in
             (("low", 0), ("high", 5), ("mid-1", 1), ("mid-2", 1))]
    await until(lambda: len(queue) == 4)
    for expected in (1, 2, 3, 4):
        queue.wake_one()
        await until(lambda: len(woke) == expected)  # noqa: B023 - awaited at once
    await asyncio.gather(*tasks)
    assert woke == ["high", "mid-1", "mid-2", "low"]


async def test_a_full_queue_refuses_and_a_deadline_ends_the_wait() -> None:
    queue = WaitQueue(QueueConfig(max_size=1, max_wait_seconds=0.05))
    first = queue.ticket(0)
    waiting = asyncio.create_task(queue.wait(first))
    await until(lambda: len(queue) == 1)
    with pytest.raises(QueueFull):
        queue.ticket(0)
    assert await waiting is False  # the deadline passed with nobody waking it
    assert len(queue) == 0


@dataclass
class Held:
    gw: RunningGateway
    mock: MockBackend
    hog: asyncio.Task[int]

    @property
    def url(self) -> str:
        return self.gw.url

    async def release(self) -> None:
        self.mock.release.set()
        assert await self.hog == 200


async def held_fleet(mock_backend: MockFactory, gateway: GatewayFactory,
                     **queue: float) -> Held:
    """One backend with room for one request, taken by a stream that holds until released."""
    mock = await mock_backend("gpu", models=["llm"])
    mock.hold = True
    gw = await gateway(make_config([backend(mock, max_concurrent=1)], queue=queue))
    session = aiohttp.ClientSession()

    async def hog() -> int:
        async with session, session.post(gw.url + "/v1/chat/completions",
                                         json=chat("llm", stream=True)) as response:
            await response.read()
            return response.status

    task = asyncio.create_task(hog())
    gpu = gw.gateway.registry.get("gpu")
    assert gpu is not None
    await until(lambda: gpu.in_flight == 1)
    return Held(gw, mock, task)


async def test_a_request_waits_for_capacity_then_is_served(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    held = await held_fleet(mock_backend, gateway)
    waiting = asyncio.create_task(post(http, held.url, chat("llm")))
    await until(lambda: len(held.gw.gateway.waiting) == 1)
    await held.release()
    status, headers, _ = await waiting
    assert status == 200
    assert headers["X-Nexus-Backend"] == "gpu"


async def test_a_request_that_waits_too_long_gets_503_with_retry_after(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    held = await held_fleet(mock_backend, gateway, max_wait_seconds=0.1)
    status, headers, answer = await post(http, held.url, chat("llm"))
    assert status == 503
    assert int(headers["Retry-After"]) >= 1
    assert "at capacity 1/1" in answer["error"]["message"]  # type: ignore[index]
    await held.release()


async def test_a_full_queue_answers_503_at_once(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    held = await held_fleet(mock_backend, gateway, max_size=1)
    first = asyncio.create_task(post(http, held.url, chat("llm")))
    await until(lambda: len(held.gw.gateway.waiting) == 1)
    status, headers, answer = await post(http, held.url, chat("llm"))
    assert status == 503
    assert "wait queue is full" in answer["error"]["message"]  # type: ignore[index]
    assert headers["Retry-After"] == "1"
    await held.release()
    assert (await first)[0] == 200


async def test_a_disabled_queue_answers_503_at_once(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    held = await held_fleet(mock_backend, gateway, enabled=False)
    status, headers, _ = await post(http, held.url, chat("llm"))
    assert (status, headers["Retry-After"]) == (503, "1")
    await held.release()


async def loading_fleet(mock_backend: MockFactory, gateway: GatewayFactory,
                        eta: float, **queue: float) -> tuple[RunningGateway, MockBackend]:
    big = await mock_backend("big", models=["llm"], loading=True, loading_eta=eta)
    small = await mock_backend("small", models=["llm"])
    gw = await gateway(make_config([backend(big, priority=90, models=["llm"]),
                                    backend(small, priority=10)], queue=queue))
    return gw, big


async def test_a_request_waits_for_the_preferred_backend_to_finish_loading(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, big = await loading_fleet(mock_backend, gateway, eta=20)
    waiting = asyncio.create_task(post(http, gw.url, chat("llm")))
    await until(lambda: len(gw.gateway.waiting) == 1)
    big.set(loading=False)
    assert gw.gateway.checker is not None
    await gw.gateway.checker.check_all()  # the backend is back: queued requests wake
    status, headers, _ = await waiting
    assert (status, headers["X-Nexus-Backend"]) == (200, "big")


async def test_when_the_wait_ends_the_queue_fallback_serves(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gw, _ = await loading_fleet(mock_backend, gateway, eta=0.1, max_wait_seconds=0.2)
    status, headers, _ = await post(http, gw.url, chat("llm"))
    assert (status, headers["X-Nexus-Backend"]) == (200, "small")
