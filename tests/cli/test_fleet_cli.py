"""`nexus budget` and `nexus backends` read the fleet's view straight from Redis."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from nexus.backends.registry import Registry
from nexus.budget.month import month_of
from nexus.budget.records import SpendRecord
from nexus.cli.main import main
from nexus.config.schema import RedisConfig
from nexus.fleet.fleet import Fleet
from nexus.fleet.leader import Leadership
from nexus.store.redis_store import RedisStore
from tests.support.fleet_helpers import config_for
from tests.support.redis_server import RedisServer


def config_file(tmp_path: Path, url: str, prefix: str) -> str:
    path = tmp_path / "nexus.toml"
    path.write_text(f'[redis]\nurl = "{url}"\nprefix = "{prefix}"\n'
                    "[routing.budget]\nmonthly_limit_usd = 0.01\nsoft_limit_percent = 50\n"
                    '[[backends]]\nname = "cloud"\nurl = "http://127.0.0.1:9"\n'
                    'models = ["gpt-4o"]\n')
    return str(path)


async def test_nexus_budget_shows_the_months_spend_by_backend_and_model(
        tmp_path: Path, redis_server: RedisServer, redis_prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    store = RedisStore(RedisConfig(url=redis_server.url, prefix=redis_prefix))
    await store.start()
    store.record_spend(SpendRecord(request_id="r1", month=month_of(), backend="cloud",
                                   model="gpt-4o", cost_micro_usd=6_000))
    await store.sync()
    leader = Leadership(store.client, store.keys, "replica-7", 10_000)
    await leader.step()
    path = config_file(tmp_path, redis_server.url, redis_prefix)
    assert await asyncio.to_thread(main, ["budget", "--config", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["spent_micro_usd"], data["status"], data["leader"]) == \
        (6_000, "soft_limit", "replica-7")
    assert data["by_backend"] == {"cloud": 6_000}
    assert data["by_model"] == {"gpt-4o": 6_000}
    assert await asyncio.to_thread(main, ["budget", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "spent $0.006000 of $0.010000 (soft_limit, snapshot)" in out
    assert "cloud" in out
    await store.close()


async def test_nexus_backends_shows_published_health_and_figures(
        tmp_path: Path, redis_server: RedisServer, redis_prefix: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = config_for(redis_server.url, redis_prefix)
    assert config.redis is not None
    store = RedisStore(config.redis, replica_id="r1")
    fleet = Fleet(config, store, Registry.from_config(config, {}), "r1")
    gpu = fleet.registry.get("gpu")
    assert gpu is not None
    gpu.in_flight = 3
    gpu.health.success()
    await fleet.leadership.step()
    await fleet.publish_health()
    await fleet.publish_metrics()
    path = config_file(tmp_path, redis_server.url, redis_prefix)
    assert await asyncio.to_thread(main, ["backends", "--config", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["replicas"] == ["r1"]
    (entry,) = data["backends"]
    assert (entry["name"], entry["state"], entry["in_flight"], entry["checked_by"]) == \
        ("gpu", "healthy", 3, "r1")
    await store.client.aclose()


def test_nexus_budget_without_redis_says_what_to_do(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "alone.toml"
    path.write_text("[server]\nport = 8000\n")
    assert main(["budget", "--config", str(path)]) == 1
    assert "no [redis] configured" in capsys.readouterr().err  # asked the replica itself
