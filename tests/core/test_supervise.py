"""Background loops: a crash is logged, the loop starts again, and /health shows it."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from nexus.core.tasks import Supervisor
from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config, until


async def test_a_crashed_loop_is_logged_and_started_again(
        caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nexus.core.tasks.BACKOFF_SECONDS", (0.0,))
    runs = 0
    healed = asyncio.Event()

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise ValueError(f"decode error {runs}")
        healed.set()
        await asyncio.Event().wait()  # runs on, as a loop does

    supervisor = Supervisor()
    supervisor.start("flaky", flaky)
    await asyncio.wait_for(healed.wait(), 30)
    status = supervisor.loops["flaky"]
    assert (status.restarts, status.last_error) == (2, "ValueError: decode error 2")
    assert [s.name for s in supervisor.failing()] == ["flaky"]
    assert "background loop flaky crashed" in caplog.text
    await supervisor.stop()
    assert supervisor.loops["flaky"].restarts == 2  # a cancel is not a crash


async def test_a_loop_that_keeps_failing_shows_in_health(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nexus.core.tasks.BACKOFF_SECONDS", (0.01,))
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)], health_check={"interval_seconds": 0.01}))

    async def broken_check() -> None:
        raise KeyError("unreadable model list")

    monkeypatch.setattr(gw.gateway.checker, "check_all", broken_check)
    await until(lambda: gw.gateway.supervisor.loops["health-checks"].restarts >= 2, within=30)
    async with http.get(gw.url + "/health") as r:
        health = await r.json()
    assert health["status"] == "degraded"
    loop = health["loops"]["health-checks"]
    assert loop["failing"] >= 2
    assert "unreadable model list" in loop["last_error"]
