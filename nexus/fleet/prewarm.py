"""Pre-warm recommendations: load a model before the requests for it arrive.

Every served request is counted per model in its hour (the store batches the counts
with its figures, off the request path; 31 days kept). Every
`[fleet] prewarm_interval_seconds` the leader (or a replica alone) reads that history
and looks, per model, for

- rising demand: the last 3 hours at twice or more the 24 hours before them;
- a daily peak ahead: in the next 2 hours, the hour that on most of the last 7 days
  drew twice or more the model's hourly mean;
- sustained growth: the last 7 days 30 % or more above the 7 before.

For each, it names a target: a backend that can load the model (Ollama, llama-server
in router mode, vLLM's adapters), is healthy, has no copy loaded, and has the room
(`prewarm_headroom_percent` of its GPU memory stays free after the load: see
nexus/fleet/room.py for how that is known, or not).
Recommendations carry a confidence (0-1) and their reasoning in words, and expire
after an hour. With `prewarm = "auto"` the leader loads the best of them through the
lifecycle operations, only where the room is known; by default they are advice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.lifecycle import ModelOps, Unsupported
from nexus.backends.registry import Registry
from nexus.config.schema import FleetConfig
from nexus.core.errors import NexusError
from nexus.core.tasks import stop_if_cancelled
from nexus.fleet.placement import Placement
from nexus.fleet.room import Room, room_for
from nexus.store.base import DemandHistory
from nexus.store.errors import StoreError

log = logging.getLogger(__name__)
HISTORY_HOURS = 30 * 24
MIN_HOURLY = 5.0          # below this many requests an hour, no pattern is worth a load
RISE = 2.0                # the last 3 hours against the 24 before them
PEAK = 2.0                # an hour of the day against the model's hourly mean
GROWTH = 1.3              # the last 7 days against the 7 before
AUTO_CONFIDENCE = 0.6     # "auto" acts only on recommendations at least this sure
VALID_SECONDS = 3600.0


class Recommendation(msgspec.Struct, kw_only=True):
    model: str
    backends: list[str]
    confidence: float
    reasoning: str
    expires_at: float
    signal: str  # rising | daily_peak | growth


class Published(msgspec.Struct, kw_only=True):
    recommendations: list[Recommendation]
    computed_at: float
    by: str
    mode: str


def signals(hourly: dict[int, int], now_hour: int) -> list[tuple[str, float, str]]:
    """(signal, confidence, reasoning) for one model's hourly counts (hour -> requests);
    `now_hour` is the hour under way (its count is partial, so not read)."""
    def total(first: int, last: int) -> int:
        return sum(hourly.get(h, 0) for h in range(first, last + 1))

    found: list[tuple[str, float, str]] = []
    recent, before = total(now_hour - 3, now_hour - 1) / 3, total(now_hour - 27,
                                                                   now_hour - 4) / 24
    if recent >= MIN_HOURLY and recent >= RISE * max(before, 1.0):
        ratio = recent / max(before, 1.0)
        found.append(("rising", round(min(0.95, 0.5 + 0.1 * ratio), 2),
                      f"{recent:.0f} requests/hour over the last 3 hours, {ratio:.1f}x the "
                      f"{before:.1f}/hour of the 24 hours before"))
    peak = _daily_peak(hourly, now_hour)
    if peak is not None:
        found.append(peak)
    week, last_week = total(now_hour - 168, now_hour - 1), total(now_hour - 336,
                                                                 now_hour - 169)
    if last_week >= MIN_HOURLY * 24 and week >= GROWTH * last_week:
        growth = week / last_week
        found.append(("growth", round(min(0.9, 0.4 + (growth - 1)), 2),
                      f"{week} requests in the last 7 days, {100 * (growth - 1):+.0f} % on "
                      f"the {last_week} of the 7 before"))
    return found


def _daily_peak(hourly: dict[int, int], now_hour: int) -> tuple[str, float, str] | None:
    week = [hourly.get(h, 0) for h in range(now_hour - 168, now_hour)]
    mean = sum(week) / 168
    for ahead in (1, 2):
        same_hour = [hourly.get(now_hour + ahead - 24 * day, 0) for day in range(1, 8)]
        busy = [n for n in same_hour if n >= PEAK * max(mean, 1.0) and n >= MIN_HOURLY]
        if len(busy) >= 4:  # most days of the week, not one busy afternoon
            at = (now_hour + ahead) % 24
            return ("daily_peak", round(0.9 * len(busy) / 7, 2),
                    f"a daily peak at {at:02d}:00 UTC (in {ahead} h): on {len(busy)} of the "
                    f"last 7 days {sum(busy) / len(busy):.0f} requests/hour then, against "
                    f"{mean:.1f}/hour on average")
    return None


def targets(registry: Registry, model: str,
            headroom_percent: float) -> list[tuple[Backend, Room]]:
    """Backends that could take a copy: able to load, healthy, without it loaded, not
    known to lack the room; the ones that have it on disk (cold) first, then those whose
    room is known, then the roomiest."""
    found = []
    for backend in registry:
        if not backend.health.routable or backend.transitions.get(model) is not None:
            continue
        with contextlib.suppress(Unsupported):
            ModelOps.check(backend, "load")
            if _loaded(backend, model):
                continue
            room = room_for(backend, model, headroom_percent, registry)
            if room.fits is not False:
                found.append((backend, room))
    return sorted(found, key=lambda t: (model not in t[0].models, t[1].fits is None,
                                        -t[1].free))


def _cloud_only(registry: Registry, model: str) -> bool:
    """Served by cloud APIs alone: its name means nothing to Ollama's registry or a
    llama-server's models, and a pull of it would fail or fetch a stranger."""
    serving = registry.serving(model)
    return bool(serving) and all(b.is_cloud for b in serving)


def _loaded(backend: Backend, model: str) -> bool:
    engine = backend.state.engine
    if engine is not None and engine.loaded is not None:
        return model in engine.loaded
    return model in backend.models


class Prewarm:
    def __init__(self, store: DemandHistory, registry: Registry, placement: Placement,
                 config: FleetConfig, replica_id: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.registry = registry
        self.placement = placement
        self.config = config
        self.replica_id = replica_id
        self.clock = clock
        self.leading: Callable[[], bool] = lambda: True  # a fleet: its leader only
        # Where the leader's result goes and is read from (a fleet: Redis, fenced)
        self.publish: Callable[[bytes], Any] | None = None
        self.read_published: Callable[[], Any] | None = None
        self._latest = Published(recommendations=[], computed_at=0.0, by="", mode="")

    async def compute(self) -> list[Recommendation]:
        now = self.clock()
        now_hour = int(now) // 3600
        history = await self.store.demand(now_hour - HISTORY_HOURS, now_hour)
        by_model: dict[str, dict[int, int]] = {}
        for hour, counts in history.items():
            for model, requests in counts.items():
                by_model.setdefault(model, {})[hour] = requests
        found = []
        for model, hourly in sorted(by_model.items()):
            if _cloud_only(self.registry, model):
                continue  # a cloud API's model: no local server has it to load
            ranked = sorted(signals(hourly, now_hour), key=lambda s: -s[1])
            where = targets(self.registry, model, self.config.prewarm_headroom_percent)
            if ranked and where:
                signal, confidence, why = ranked[0]
                more = "; also " + "; ".join(s[2] for s in ranked[1:]) if ranked[1:] else ""
                best, room = where[0]
                found.append(Recommendation(
                    model=model, backends=[b.name for b, _ in where[:2]],
                    confidence=confidence, signal=signal,
                    expires_at=round(now + VALID_SECONDS, 3),
                    reasoning=f"{model}: {why}{more}; {best.name} can load it and has no "
                              f"copy loaded; {room.words}"))
        return sorted(found, key=lambda r: -r.confidence)

    async def run_once(self) -> list[Recommendation]:
        """Compute, publish, and in "auto" act; only where this replica leads."""
        if not self.leading():
            return []
        found = await self.compute()
        published = Published(recommendations=found, computed_at=round(self.clock(), 3),
                              by=self.replica_id, mode=self.config.prewarm)
        self._latest = published
        if self.publish is not None:
            await self.publish(msgspec.json.encode(published))
        if self.config.prewarm == "auto":
            await self._act(found)
        return found

    async def _act(self, found: list[Recommendation]) -> None:
        started = 0
        for rec in found:
            if started >= self.config.prewarm_max_loads or rec.confidence < AUTO_CONFIDENCE:
                break
            target = self._roomy(rec)
            if target is None:
                log.info("pre-warm of %s not started: no backend is known to have the "
                         "room (set vram_gb on Ollama backends)", rec.model)
                continue
            try:
                operation = await self.placement.start("load", rec.model, [target])
            except (NexusError, StoreError) as exc:
                log.info("pre-warm of %s on %s not started: %s", rec.model, target, exc)
                continue
            started += 1
            log.info("pre-warm: %s loads %s on %s (%s)", operation["id"], rec.model,
                     target, rec.reasoning)

    def _roomy(self, rec: Recommendation) -> str | None:
        """The first of its backends known, now, to have the room: "auto" loads nowhere
        else, as a load that does not fit evicts a model in use."""
        for name in rec.backends:
            backend = self.registry.get(name)
            if backend is not None and room_for(backend, rec.model,
                                                self.config.prewarm_headroom_percent,
                                                self.registry).fits:
                return name
        return None

    async def current(self) -> dict[str, Any]:
        """What the API and the dashboard show: the leader's latest, unexpired."""
        published = self._latest
        if self.read_published is not None:
            raw = await self.read_published()
            published = msgspec.json.decode(raw, type=Published) if raw else \
                Published(recommendations=[], computed_at=0.0, by="", mode="")
        now = self.clock()
        return {"recommendations": [msgspec.to_builtins(r) for r in published.recommendations
                                    if r.expires_at > now],
                "computed_at": published.computed_at or None, "by": published.by or None,
                "mode": self.config.prewarm}

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except StoreError as exc:
                log.info("pre-warm recommendations skipped this round: %s", exc)
            stop_if_cancelled()  # redis-py may swallow a cancel, or turn it into an error
            await asyncio.sleep(self.config.prewarm_interval_seconds)
