"""Active health checks: discovery, thresholds, recovery, loading with an ETA."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from nexus.backends.checker import HealthChecker
from nexus.backends.health import Health, HealthTracker
from nexus.backends.registry import Registry
from tests.support.helpers import MockFactory, backend, make_config
from tests.support.mock_backend import MockBackend


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def checker_for(mock: MockBackend, session: aiohttp.ClientSession,
                **fields: object) -> tuple[HealthChecker, Registry]:
    config = make_config([backend(mock, **fields)],
                         health_check={"failure_threshold": 3, "recovery_threshold": 2})
    registry = Registry.from_config(config, environ={})
    return HealthChecker(registry, session, config.health_check), registry


def state(registry: Registry) -> Health:
    return next(iter(registry)).health.state


async def test_discovery_fills_the_model_index(mock_backend: MockFactory,
                                               session: aiohttp.ClientSession) -> None:
    mock = await mock_backend("vllm", models=["a", "b"])
    checker, registry = checker_for(mock, session, type="vllm", models=["static"])
    await checker.check_all()
    assert state(registry) is Health.HEALTHY
    assert {b.name for b in registry.serving("a")} == {"vllm"}
    assert registry.knows("static")


async def test_failure_threshold_then_recovery_threshold(mock_backend: MockFactory,
                                                         session: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    checker, registry = checker_for(mock, session)
    await checker.check_all()
    assert state(registry) is Health.HEALTHY
    mock.set(models_status=500)
    for _ in range(2):
        await checker.check_all()
        assert state(registry) is Health.HEALTHY  # below the threshold of 3
    await checker.check_all()
    assert state(registry) is Health.UNHEALTHY
    mock.set(models_status=None)
    await checker.check_all()
    assert state(registry) is Health.UNHEALTHY  # one success is not yet recovery
    await checker.check_all()
    assert state(registry) is Health.HEALTHY


async def test_loading_is_reported_with_its_eta(mock_backend: MockFactory,
                                                session: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", loading=True, loading_eta=25)
    checker, registry = checker_for(mock, session)
    await checker.check_all()
    tracker = next(iter(registry)).health
    assert tracker.state is Health.LOADING
    assert tracker.eta is not None
    mock.set(loading=False)
    await checker.check_all()
    assert (tracker.state, tracker.eta) == (Health.HEALTHY, None)


async def test_unreachable_backend_goes_unhealthy_from_unknown(
        session: aiohttp.ClientSession) -> None:
    config = make_config([{"name": "gone", "url": "http://127.0.0.1:9"}])
    registry = Registry.from_config(config, environ={})
    await HealthChecker(registry, session, config.health_check).check_all()
    tracker = next(iter(registry)).health
    assert tracker.state is Health.UNHEALTHY
    assert "unreachable" in tracker.reason


async def test_cloud_backends_send_their_key_to_discovery(mock_backend: MockFactory,
                                                          session: aiohttp.ClientSession) -> None:
    mock = await mock_backend("openai", models=["gpt-4o"])
    config = make_config([backend(mock, type="openai", api_key_env="OPENAI_KEY")])
    registry = Registry.from_config(config, environ={"OPENAI_KEY": "sk-test"})
    await HealthChecker(registry, session, config.health_check).check_all()
    assert mock.received[0].headers["Authorization"] == "Bearer sk-test"
    assert "sk-test" not in repr(next(iter(registry)))


def test_passive_connection_error_takes_a_backend_out_at_once() -> None:
    tracker = HealthTracker(failure_threshold=3, recovery_threshold=2)
    tracker.success()
    tracker.unreachable("connection refused")
    assert tracker.state is Health.UNHEALTHY
    tracker.success()
    assert tracker.state is Health.UNHEALTHY
    tracker.success()
    assert tracker.state is Health.HEALTHY


async def test_ollama_sizes_on_disk_are_read_with_the_model_list(
        mock_backend: MockFactory, session: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", flavor="ollama", models=["qwen3:8b", "llama3:latest"],
                              model_gb={"qwen3:8b": 5.2})
    checker, registry = checker_for(mock, session, type="ollama")
    await checker.check_all()
    sizes = registry.get("gpu").state.sizes
    assert sizes["qwen3:8b"] == 5_200_000_000
    assert sizes["llama3"] == sizes["llama3:latest"] == 4_000_000_000


@pytest.mark.parametrize("body", [
    b'[1, 2]', b'{"models": [{"name": "m", "size": -5}, {"name": "n", "size": "big"}]}',
    b'{"models": "none"}', b'not json'])
async def test_a_broken_ollama_model_list_is_a_failed_check_not_a_crash(
        mock_backend: MockFactory, session: aiohttp.ClientSession, body: bytes) -> None:
    mock = await mock_backend("gpu", flavor="ollama", discovery_body=body)
    checker, registry = checker_for(mock, session, type="ollama")
    await checker.check_all()
    gpu = registry.get("gpu")
    if b'"size"' in body:  # the list itself is readable: sizes that are not are skipped
        assert gpu.health.state is Health.HEALTHY
        assert gpu.state.sizes == {}
    else:
        assert "unreadable model list" in gpu.health.reason
