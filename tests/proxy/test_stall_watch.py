"""The request timeout: a backend exchange quiet for the limit is ended, whatever its phase;
one that keeps sending is never ended. The watch runs on a fake clock here."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from nexus.proxy.stall import StallWatch
from tests.support.helpers import GatewayFactory, MockFactory, backend, chat, make_config, read_sse


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Body:
    """Stands in for a response's body reader: records the failure it is given."""

    def __init__(self) -> None:
        self.content = self
        self.error: BaseException | None = None

    def set_exception(self, error: BaseException) -> None:
        self.error = error


def test_the_sweep_period_is_a_quarter_of_the_limit_at_most_a_second() -> None:
    assert StallWatch(0.2).period == pytest.approx(0.05)
    assert StallWatch(300).period == 1.0


async def test_a_backend_that_never_answers_has_its_wait_cancelled_at_the_limit() -> None:
    clock = Clock()
    watch = StallWatch(10, clock)
    waiting = asyncio.create_task(asyncio.Event().wait())
    exchange = watch.open()
    exchange.task = waiting
    clock.now += 9.9
    assert watch.sweep() == 0
    clock.now += 0.1
    assert watch.sweep() == 1
    assert exchange.stalled
    with pytest.raises(asyncio.CancelledError):
        await waiting
    clock.now += 60
    assert watch.sweep() == 0  # ended once


async def test_a_body_gone_quiet_fails_its_reader_with_a_timeout() -> None:
    clock = Clock()
    watch = StallWatch(10, clock)
    exchange = watch.open()
    body = Body()
    exchange.response = body  # type: ignore[assignment]
    clock.now += 10
    assert watch.sweep() == 1
    assert isinstance(body.error, aiohttp.ServerTimeoutError)
    assert isinstance(body.error, TimeoutError)  # what the forwarder and relay catch
    assert not exchange.task.cancelled()  # type: ignore[union-attr]


async def test_an_exchange_that_keeps_reading_is_never_ended() -> None:
    clock = Clock()
    watch = StallWatch(10, clock)
    exchange = watch.open()
    exchange.response = Body()  # type: ignore[assignment]
    for _ in range(100):  # 500 s in all, never 10 s without a read
        clock.now += 5
        exchange.reads += 1
        assert watch.sweep() == 0
    clock.now += 5
    assert watch.sweep() == 0  # quiet for 5 s only: the last sweep saw a read
    clock.now += 5
    assert watch.sweep() == 1


async def test_a_closed_exchange_is_not_watched() -> None:
    clock = Clock()
    watch = StallWatch(10, clock)
    exchange = watch.open()
    watch.close(exchange)
    clock.now += 60
    assert watch.sweep() == 0
    assert len(watch) == 0


async def test_a_stream_that_goes_silent_ends_with_an_sse_error_and_frees_the_watch(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", chunks=3)
    mock.hold = True  # sends one chunk, then nothing until released (never, here)
    gw = await gateway(make_config([backend(mock, models=["mock-model"])],
                                   server={"request_timeout_seconds": 0.3},
                                   health_check={"enabled": False}))
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as r:
        assert r.status == 200
        events = await asyncio.wait_for(read_sse(r), 10)
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "hello "  # after the role
    error = json.loads(events[-1])["error"]
    assert error["code"] == "backend_stream_interrupted"
    assert "went silent" in error["message"]
    mock.release.set()
    assert len(gw.gateway.forwarder.watch) == 0
    state = gw.gateway.registry.get("gpu")
    assert state is not None
    assert state.health.failures == 1


async def test_a_whole_answer_that_stops_half_way_goes_to_the_next_backend(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    stuck = await mock_backend("stuck", stall_body=True)
    good = await mock_backend("good")
    gw = await gateway(make_config(
        [backend(stuck, models=["mock-model"], priority=100),
         backend(good, models=["mock-model"], priority=1)],
        server={"request_timeout_seconds": 0.3}, health_check={"enabled": False}))
    async def ask() -> aiohttp.ClientResponse:
        async with http.post(gw.url + "/v1/chat/completions", json=chat()) as r:
            await r.read()
            return r

    r = await asyncio.wait_for(ask(), 10)  # without the watch it would wait forever
    assert r.status == 200
    assert r.headers["X-Nexus-Backend"] == "good"
    assert r.headers["X-Nexus-Route-Reason"].endswith("retry=1")
    stuck.release.set()
    assert gw.gateway.stats.failures["stuck", "timed_out"] == 1
    assert len(gw.gateway.forwarder.watch) == 0


async def wait_for_backend(watch: StallWatch, started: asyncio.Event) -> str:
    """What the forwarder does around a request: a cancel that is the watch's alone is a
    timeout of the backend; any other cancel goes on."""
    exchange = watch.open()
    started.set()
    try:
        await asyncio.Event().wait()  # a backend that never answers
    except asyncio.CancelledError:
        if not exchange.cancel_was_ours_alone():
            raise
        return "timed out"
    finally:
        watch.close(exchange)
    return "answered"


async def stalled_request() -> tuple[StallWatch, asyncio.Task[str]]:
    """A request waiting on a silent backend, just as the watch has cancelled it."""
    clock, started = Clock(), asyncio.Event()
    watch = StallWatch(10, clock)
    task = asyncio.create_task(wait_for_backend(watch, started))
    await started.wait()
    clock.now += 10
    assert watch.sweep() == 1
    return watch, task


async def test_the_watchs_cancel_becomes_a_timeout_and_the_task_goes_on() -> None:
    _, task = await stalled_request()
    assert await task == "timed out"
    assert task.cancelling() == 0  # the cancel is spent: the handler may await again


async def test_a_shutdown_cancel_at_the_same_moment_is_not_swallowed() -> None:
    _, task = await stalled_request()
    task.cancel()  # the server shutting down, before the task runs again
    with pytest.raises(asyncio.CancelledError):
        await task
