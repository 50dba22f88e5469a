"""What a replica tells about itself: health, stats, metrics and the month's budget.

Tenants do not see each other: a client key reads its own key's and team's figures
only; the admin key (and, on an open gateway with no keys, anyone) reads them all.
/metrics gives every scraper the fleet-level series, and the per-tenant ones only to
the admin key or the metrics key.
"""

from __future__ import annotations

import os
import re
from typing import Any

import msgspec
from aiohttp import web

from nexus import __version__
from nexus.backends.engine import engine_view
from nexus.backends.health import Health
from nexus.budget.prices import usd
from nexus.budget.report import budget_report
from nexus.core.errors import BadRequest
from nexus.http.context import EDGE, GATEWAY, TENANCY, json_response
from nexus.http.edge import AS_ADMIN, TENANT
from nexus.http.metrics import render_metrics
from nexus.replica import Gateway
from nexus.tenants.model import Tenant

_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


async def health(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    counts = {state.value: 0 for state in Health}
    for backend in gateway.registry:
        counts[backend.health.state.value] += 1
    failing = gateway.supervisor.failing()
    tenancy = request.app[TENANCY]
    degraded = not counts["healthy"] or failing or tenancy.store_lost_keys
    return json_response({
        "status": "degraded" if degraded else "ok",
        "version": __version__,
        "uptime_seconds": round(gateway.stats.uptime(), 3),
        "backends": {"total": len(gateway.registry), **counts},
        "models": len(gateway.registry.available_models()),
        "replica": _replica(gateway),
        "store": msgspec.to_builtins(gateway.store.status()),
        "tenancy": {"required": tenancy.required, "store_lost_keys": tenancy.store_lost_keys},
        "loops": {status.name: msgspec.to_builtins(status)
                  for status in gateway.supervisor.loops.values()},
    })


def _replica(gateway: Gateway) -> dict[str, Any]:
    fleet = gateway.fleet
    if fleet is None:  # alone: it leads itself
        return {"id": gateway.replica_id, "pid": os.getpid(), "leader": True, "epoch": None,
                "fleet_size": 1}
    return {"id": gateway.replica_id, "pid": os.getpid(), "leader": fleet.leadership.leading,
            "epoch": fleet.leadership.epoch or None, "fleet_size": fleet.replica_count}


def _reader(request: web.Request) -> Tenant | None:
    """Whose figures the request may read: None for all (the admin key, or an open
    gateway), else the tenant's own."""
    return None if request.get(AS_ADMIN, False) else request.get(TENANT)


def _own(tenant: Tenant | None, kind: str, names: set[str]) -> list[str]:
    """The names of `kind` ("keys", "teams") the reader may see, sorted."""
    if tenant is None:
        return sorted(names)
    mine = tenant.key.name if kind == "keys" else (tenant.team.name if tenant.team else None)
    return [mine] if mine in names else []


async def stats(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    reader = _reader(request)
    return json_response({
        "uptime_seconds": round(gateway.stats.uptime(), 3),
        "backends": [_backend_stats(gateway, b.name) for b in gateway.registry],
        "prefix_cache_hit_rate": _fleet_hit_rate(gateway),
        "tenants": {kind: {name: {"requests": requests[name], "spend_micro_usd": spend[name]}
                           for name in _own(reader, kind, set(requests) | set(spend))}
                    for kind, requests, spend in (
                        ("keys", gateway.stats.key_requests, gateway.stats.key_spend),
                        ("teams", gateway.stats.team_requests, gateway.stats.team_spend))},
    })


def _fleet_hit_rate(gateway: Gateway) -> float | None:
    """The fleet's prefix-cache hit rate: cached tokens over queried ones, summed over
    the servers whose engines report them."""
    engines = [e for b in gateway.registry if (e := b.state.engine) is not None
               and e.prefix_queries]
    queried = sum(e.prefix_queries or 0.0 for e in engines)
    return None if not queried else sum(e.prefix_hits or 0.0 for e in engines) / queried


def _backend_stats(gateway: Gateway, name: str) -> dict[str, Any]:
    backend = gateway.registry.get(name)
    assert backend is not None
    counters = gateway.stats
    return {
        "name": name, "type": backend.config.type, "zone": backend.config.zone,
        "state": backend.health.state.value, "reason": backend.health.reason,
        "loading_eta": backend.health.eta,
        "models": sorted(backend.models), "in_flight": backend.in_flight,
        "context_windows": {m: msgspec.to_builtins(w) for m in sorted(backend.models)
                            if (w := backend.window(m)) is not None},
        "capabilities": {m: sorted(c) for m, c in sorted(backend.state.capabilities.items())},
        "latency_ema_ms": backend.latency_ema_ms,
        "engine": engine_view(backend.state.engine),  # what the server says of its load
        "responses": {str(s): n for (b, s), n in counters.responses.items() if b == name},
        "failures": {k: n for (b, k), n in counters.failures.items() if b == name},
        "prompt_tokens": counters.prompt_tokens[name],
        "completion_tokens": counters.completion_tokens[name],
        # The part of the token counts estimated because the backend reported none.
        "estimated_prompt_tokens": counters.estimated_prompt_tokens[name],
        "estimated_completion_tokens": counters.estimated_completion_tokens[name],
    }


async def metrics(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    tenancy = request.app[TENANCY]
    return web.Response(text=render_metrics(gateway.registry, gateway.stats,
                                            gateway.store.status(),
                                            tenants=tenancy.is_scraper(request.headers),
                                            store_lost_keys=tenancy.store_lost_keys,
                                            edge=request.app[EDGE]),
                        content_type="text/plain", charset="utf-8")


async def budget(request: web.Request, rid: str) -> web.Response:
    """This replica's view of the month's spend (the fleet's, when it shares a Redis)."""
    gateway = request.app[GATEWAY]
    month = request.query.get("month") or gateway.store.budget_view().month
    if not _MONTH.fullmatch(month):
        raise BadRequest(f"month must be YYYY-MM, not {month!r}", param="month")
    spend = await gateway.store.breakdown(month)
    leader = _replica(gateway)
    report = budget_report(spend, gateway.config.routing.budget,
                           leader["id"] if leader["leader"] else None)
    reader = _reader(request)
    return json_response(report if reader is None else _tenant_budget(report, reader))


def _tenant_budget(report: dict[str, Any], tenant: Tenant) -> dict[str, Any]:
    """A client key's part of the month, in the report's shape: its key's and team's
    spend, and nothing of the fleet's that would tell what others spent."""
    by_key = {n: report["by_key"][n] for n in _own(tenant, "keys", set(report["by_key"]))}
    by_team = {n: report["by_team"][n] for n in _own(tenant, "teams", set(report["by_team"]))}
    spent = sum(by_key.values())
    return {"month": report["month"], "scope": f"key:{tenant.key.name}",
            "spent_micro_usd": spent, "spent_usd": usd(spent), "reserved_micro_usd": 0,
            "by_backend": {}, "by_model": {}, "by_key": by_key, "by_team": by_team,
            "leader": None, "reconciled": None}
