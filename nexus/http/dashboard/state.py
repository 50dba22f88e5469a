"""What the dashboard shows, as JSON: the fleet, the backends, the money, the feed.

Built at most once a second however many dashboards are open (they share it), and
only while one is: a replica with no dashboard open does no work for it beyond
publishing its card with its periodic figures.
"""

from __future__ import annotations

import asyncio
import calendar
import os
import time
from typing import Any

import msgspec

from nexus import __version__
from nexus.backends.backend import Backend
from nexus.backends.engine import engine_view
from nexus.budget.month import BudgetView, month_of, status_of
from nexus.budget.prices import micro_usd
from nexus.budget.records import SpendBreakdown
from nexus.proxy.feed import RECENT, merge_refusals
from nexus.replica import Gateway
from nexus.store.errors import StoreError

Json = dict[str, Any]
FRESH_SECONDS = 1.0  # a state younger than this is handed out again
SHOWN_OPERATIONS = 10  # the newest model operations on the page (the CLI lists more)


def replica_card(gateway: Gateway) -> Json:
    """This replica as the fleet sees it: what it publishes every snapshot period."""
    fleet, status = gateway.fleet, gateway.store.status()
    return {
        "id": gateway.replica_id, "pid": os.getpid(), "version": __version__,
        "leader": True if fleet is None else fleet.leadership.leading,
        "epoch": None if fleet is None else (fleet.leadership.epoch or None),
        "redis": {"kind": status.kind, "connected": status.connected,
                  "snapshot_age_seconds": status.snapshot_age_seconds,
                  "circuit_open": status.circuit_open},
        "in_flight": sum(b.in_flight for b in gateway.registry),
        "uptime_seconds": round(gateway.stats.uptime(), 1),
        "published_at": round(time.time(), 3),
        "decisions": gateway.feed.decisions(),
        "refusals": gateway.feed.refusals(),
    }


def backend_view(backend: Backend) -> Json:
    health = backend.health
    successes, errors = backend.metrics.window()
    total = successes + errors
    return {
        "name": backend.name, "type": backend.config.type, "origin": backend.origin,
        "zone": backend.config.zone,
        "tier": backend.tier, "state": health.state.value, "reason": health.reason,
        "changed_at": health.changed_at, "loading_eta": health.eta,
        "models": [{"name": m, "context_window": None if (w := backend.window(m)) is None
                    else w.tokens} for m in sorted(backend.models)],
        "in_flight": backend.fleet_in_flight, "max_concurrent": backend.max_concurrent,
        "latency_ms": _rounded(backend.latency_ema_ms),
        "ttft_ms": _rounded(backend.metrics.ttft_ema_ms),
        "error_rate": None if total == 0 else round(errors / total, 4),
        "requests_last_hour": total, "requests_per_minute": round(total / 60, 2),
        "engine": engine_view(backend.state.engine),  # the server's own queue, KV, hits
    }


def money_view(spend: SpendBreakdown, gateway: Gateway, now: float) -> Json:
    budget = gateway.config.routing.budget
    year, month = (int(part) for part in spend.month.split("-"))
    days = calendar.monthrange(year, month)[1]
    start = calendar.timegm((year, month, 1, 0, 0, 0))
    elapsed = max(3600.0, min(now - start, days * 86400))  # an hour at least: no wild rate
    out: Json = {
        "month": spend.month, "spent_micro_usd": spend.total_micro_usd,
        "reserved_micro_usd": spend.reserved_micro_usd,
        "by_day": [{"day": f"{spend.month}-{d:02d}",
                    "micro_usd": spend.by_day.get(f"{spend.month}-{d:02d}", 0)}
                   for d in range(1, days + 1)],
        "projected_micro_usd": round(spend.total_micro_usd * days * 86400 / elapsed),
        "by_backend": _ranked(spend.by_backend), "by_model": _ranked(spend.by_model),
        "by_key": _ranked(spend.by_key), "by_team": _ranked(spend.by_team),
        "limit_micro_usd": None,
    }
    if budget is not None:
        limit = micro_usd(budget.monthly_limit_usd)
        view = BudgetView(month=spend.month, spent_micro_usd=spend.total_micro_usd,
                          reserved_micro_usd=spend.reserved_micro_usd)
        out |= {"limit_micro_usd": limit,
                "soft_micro_usd": limit * budget.soft_limit_percent / 100,
                "status": status_of(view, budget).value, "enforcement": budget.enforcement,
                "hard_limit_action": budget.hard_limit_action}
    return out


def _ranked(amounts: dict[str, int]) -> list[Json]:
    return [{"name": n, "micro_usd": v}
            for n, v in sorted(amounts.items(), key=lambda kv: (-kv[1], kv[0]))]


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


async def placement_view(gateway: Gateway) -> Json:
    """Model operations (newest first) and the leader's pre-warm recommendations: both
    from the store, so every replica's page shows the fleet's."""
    try:
        operations = (await gateway.placement.recent())[:SHOWN_OPERATIONS]
        advice = await gateway.prewarm.current()
    except StoreError:  # Redis away: said so on the page, not guessed
        return {"available": False, "operations": [], "recommendations": [],
                "mode": gateway.config.fleet.prewarm, "computed_at": None}
    return {"available": True, "operations": operations, **advice}


class DashboardState:
    """The page's data, shared by every open dashboard of this replica."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._built: tuple[float, bytes] | None = None
        self._lock = asyncio.Lock()

    async def encoded(self) -> bytes:
        async with self._lock:  # one build at a time; the others take it
            now = time.monotonic()
            if self._built is None or now - self._built[0] >= FRESH_SECONDS:
                self._built = (now, msgspec.json.encode(await self.build()))
            return self._built[1]

    async def build(self) -> Json:
        gateway, now = self.gateway, time.time()
        cards = [replica_card(gateway), *await self._other_cards()]
        cards.sort(key=lambda card: card["id"])
        try:
            spend = await gateway.store.breakdown(month_of(now))
        except StoreError:  # Redis away: this replica's view, said so on the page
            view = gateway.store.budget_view()
            spend = SpendBreakdown(month=view.month, total_micro_usd=view.spent_micro_usd,
                                   reserved_micro_usd=view.reserved_micro_usd)
        decisions = sorted((dict(d, replica=card["id"]) for card in cards
                            for d in card.pop("decisions")),
                           key=lambda d: d["at"], reverse=True)[:RECENT]
        refusals = merge_refusals([card.pop("refusals") for card in cards])
        leader = next((card for card in cards if card["leader"]), None)
        return {"now": now, "replica": gateway.replica_id,
                "fleet": {"shared": gateway.fleet is not None, "replicas": cards,
                          "leader": leader["id"] if leader else None,
                          "epoch": leader["epoch"] if leader else None},
                "backends": [backend_view(b) for b in gateway.registry],
                "money": money_view(spend, gateway, now),
                "placement": await placement_view(gateway),
                "decisions": decisions, "refusals": refusals}

    async def _other_cards(self) -> list[Json]:
        fleet = self.gateway.fleet
        if fleet is None:
            return []
        try:
            return [msgspec.json.decode(raw) for raw in await fleet.cards()]
        except StoreError:
            return []  # Redis away: this replica alone, as routing sees it too
