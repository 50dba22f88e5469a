"""`nexus budget` and `nexus backends`: the fleet's view, read from Redis.

Both read what the replicas publish (no replica needs to be asked): the spend
keys and the leader's budget summary, the leader's health results and every
replica's per-backend figures.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import msgspec
import redis.asyncio as redis

from nexus.backends.engine import engine_view
from nexus.backends.metrics import recent
from nexus.budget.month import month_of
from nexus.budget.records import SpendBreakdown
from nexus.budget.report import budget_report, print_budget
from nexus.cli.inspect import engine_cells
from nexus.config.schema import Config
from nexus.core.masking import mask_url, mask_urls_in
from nexus.fleet.fleet import BackendFigures, PublishedEngine, PublishedHealth
from nexus.store.connect import close_client, redis_client
from nexus.store.errors import StoreError, store_errors
from nexus.store.keys import Keys

RECENT_SECONDS = 60  # replicas that published within this are listed


def fleet_command(what: str, config: Config, month: str | None, *, as_json: bool,
                  by: str | None = None) -> int:
    if config.redis is None:
        print("nexus: no [redis] configured (or NEXUS_REDIS_URL): a single replica keeps "
              f"its state in memory; ask it with `nexus {what} --url http://HOST:PORT`",
              file=sys.stderr)
        return 1
    try:
        data = asyncio.run(_read(what, config, month or month_of()))
    except StoreError as exc:
        where = mask_url(config.redis.url)
        print(f"nexus: cannot read Redis at {where}: {mask_urls_in(str(exc))}",
              file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(data, indent=2))
    elif what == "budget":
        print_budget(data, by)
    else:
        _print_backends(data)
    return 0


async def _read(what: str, config: Config, month: str) -> dict[str, Any]:
    assert config.redis is not None
    client = redis_client(msgspec.structs.replace(config.redis, timeout_seconds=5))
    try:
        keys = Keys(config.redis.prefix)
        with store_errors():
            if what == "budget":
                return await _budget(client, keys, config, month)
            return await _backends(client, keys)
    finally:
        await close_client(client)


async def _budget(client: redis.Redis, keys: Keys, config: Config,
                  month: str) -> dict[str, Any]:
    async with client.pipeline(transaction=False) as pipe:
        pipe.get(keys.spend_total(month))
        pipe.get(keys.reserved_total(month))
        pipe.hgetall(keys.spend_by_backend(month))
        pipe.hgetall(keys.spend_by_model(month))
        pipe.hgetall(keys.budget_status(month))
        pipe.get(keys.leader)
        pipe.hgetall(keys.spend_by(month, "key"))
        pipe.hgetall(keys.spend_by(month, "team"))
        spent, reserved, by_backend, by_model, summary, leader, by_key, by_team = \
            await pipe.execute()
    spend = SpendBreakdown(month=month, total_micro_usd=int(spent or 0),
                           reserved_micro_usd=int(reserved or 0),
                           by_backend={k: int(v) for k, v in by_backend.items()},
                           by_model={k: int(v) for k, v in by_model.items()},
                           by_key={k: int(v) for k, v in by_key.items()},
                           by_team={k: int(v) for k, v in by_team.items()})
    return budget_report(spend, config.routing.budget,
                         leader.split("/")[0] if leader else None, summary)


async def _backends(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    published = await client.hgetall(keys.health)
    engines = await client.hgetall(keys.engine)
    members = await client.zrangebyscore(keys.replicas, time.time() - RECENT_SECONDS, "+inf")
    replicas = [str(m) for m in members]
    figures: dict[str, dict[str, Any]] = {}
    for replica in replicas:
        for name, raw in (await client.hgetall(keys.replica_metrics(replica))).items():
            seen = msgspec.json.decode(raw, type=BackendFigures)
            entry = figures.setdefault(str(name), {"in_flight": 0, "successes": 0, "errors": 0,
                                              "replicas": 0})
            entry["in_flight"] += seen.in_flight
            now_minute = int(time.time() // 60)
            entry["successes"] += recent(seen.minute, seen.successes, now_minute)
            entry["errors"] += recent(seen.minute, seen.errors, now_minute)
            entry["replicas"] += 1
    backends = []
    for name in sorted({str(n) for n in published} | set(figures)):
        health = msgspec.json.decode(published[name], type=PublishedHealth) \
            if name in published else None
        backends.append({"name": name,
                         "state": health.state if health else "unknown",
                         "reason": health.reason if health else "no health published yet",
                         "models": health.models if health else [],
                         "checked_by": health.by if health else None,
                         "engine": _engine(engines.get(name)),
                         **figures.get(name, {"in_flight": 0, "successes": 0, "errors": 0,
                                              "replicas": 0})})
    return {"replicas": replicas, "backends": backends}


def _engine(raw: str | bytes | None) -> dict[str, Any] | None:
    """The leader's last reading of a backend's engine, aged as a replica would age it."""
    if raw is None:
        return None
    seen = msgspec.json.decode(raw, type=PublishedEngine)
    age = max(0.0, time.time() - seen.read_unix)
    return engine_view(msgspec.structs.replace(seen.signals, read_at=-age), now=0.0)


def _print_backends(data: dict[str, Any]) -> None:
    print(f"{len(data['replicas'])} replica(s) publishing: {', '.join(data['replicas'])}")
    print(f"{'NAME':<18} {'STATE':<10} {'IN FLIGHT':>9} {'QUEUE':>7} {'OK/h':>7} {'ERR/h':>6}"
          "  MODELS")
    for b in data["backends"]:
        queue = engine_cells(b["engine"])[0]
        print(f"{b['name']:<18} {b['state']:<10} {b['in_flight']:>9} {queue:>7} "
              f"{b['successes']:>7} {b['errors']:>6}  {', '.join(b['models']) or '-'}")
