"""What a replica does as a member of a fleet sharing one Redis.

Every replica publishes its per-backend figures and reads the others' into the
snapshot routing uses. The elected leader also runs the active health checks
(publishing the results for the others to adopt) and the budget reconciliation.
While Redis is away every replica checks its backends itself, as if alone.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import redis.asyncio as redis
from redis.typing import EncodableT, FieldT

from nexus.backends.backend import Backend
from nexus.backends.engine import EngineSignals
from nexus.backends.health import Health
from nexus.backends.metrics import recent
from nexus.backends.registry import Registry
from nexus.backends.windows import ContextWindow
from nexus.config.schema import Config
from nexus.core.tasks import Supervisor, stop_if_cancelled, ticks
from nexus.fleet.budget_loop import BudgetReconciliation
from nexus.fleet.leader import Leadership
from nexus.store.errors import StoreError, store_errors
from nexus.store.keys import Keys
from nexus.store.redis_store import RedisStore

log = logging.getLogger(__name__)
METRICS_TTL_PERIODS = 5  # a replica silent this many periods drops out of the merge
RECOMMENDATIONS_SECONDS = 2 * 3600  # the leader's last recommendations outlive it a while
FORGET_REPLICA_SECONDS = 24 * 3600  # how long a gone replica's name stays in the registry


class BackendFigures(msgspec.Struct, kw_only=True):
    in_flight: int
    minute: int                # unix minute of the newest bucket
    successes: list[int]       # per minute over the last hour, oldest first
    errors: list[int]
    latency_ema_ms: float | None = None
    ttft_ema_ms: float | None = None


class PublishedHealth(msgspec.Struct, kw_only=True):
    state: str
    reason: str
    models: list[str]
    eta: float | None = None
    checked_at: float
    by: str
    windows: dict[str, ContextWindow] = msgspec.field(default_factory=dict)
    capabilities: dict[str, list[str]] = msgspec.field(default_factory=dict)
    sizes: dict[str, int] = msgspec.field(default_factory=dict)


class _Merged:
    """The other replicas' figures for one backend, summed (averages as sum and count)."""

    def __init__(self) -> None:
        self.in_flight = self.successes = self.errors = 0
        self.latency: tuple[float, int] = (0.0, 0)
        self.ttft: tuple[float, int] = (0.0, 0)

    def add(self, figures: BackendFigures, now_minute: int) -> None:
        self.in_flight += figures.in_flight
        self.successes += recent(figures.minute, figures.successes, now_minute)
        self.errors += recent(figures.minute, figures.errors, now_minute)
        if figures.latency_ema_ms is not None:
            self.latency = (self.latency[0] + figures.latency_ema_ms, self.latency[1] + 1)
        if figures.ttft_ema_ms is not None:
            self.ttft = (self.ttft[0] + figures.ttft_ema_ms, self.ttft[1] + 1)


_figures_decoder = msgspec.json.Decoder(BackendFigures)


def _figures(backend: Backend) -> BackendFigures:
    minute, successes, errors = backend.metrics.buckets()
    return BackendFigures(in_flight=backend.in_flight, minute=minute, successes=successes,
                          errors=errors, latency_ema_ms=backend.local_latency_ema_ms,
                          ttft_ema_ms=backend.metrics.local_ttft_ema_ms)
_health_decoder = msgspec.json.Decoder(PublishedHealth)


class PublishedEngine(msgspec.Struct, kw_only=True):
    signals: EngineSignals
    read_unix: float  # when the leader read it (its clock, as every replica's: NTP)


_engine_decoder = msgspec.json.Decoder(PublishedEngine)
_encode = msgspec.json.encode


class Fleet:
    def __init__(self, config: Config, store: RedisStore, registry: Registry,
                 replica_id: str, supervisor: Supervisor | None = None) -> None:
        assert config.redis is not None
        self.config = config
        self.store = store
        self.client: redis.Redis = store.client
        self.keys: Keys = store.keys
        self.registry = registry
        self.replica_id = replica_id
        self.supervisor = supervisor or Supervisor()
        self.leadership = Leadership(self.client, self.keys, replica_id,
                                     config.fleet.lease_ttl_ms, replicated=store.replicated)
        self.budget = BudgetReconciliation(config, store, self.leadership)
        self.period = config.redis.snapshot_interval_seconds
        self.replica_count = 1  # live replicas, this one included, as last merged
        self._health_seen = 0.0
        # This replica's card for the dashboards (its feed included), published with
        # its figures: set by the gateway.
        self.card: Callable[[], bytes] | None = None

    @property
    def runs_health_checks(self) -> bool:
        """The leader checks for everyone; without Redis each replica checks for itself."""
        return self.leadership.leading or not self.store.connected

    async def publish_recommendations(self, record: bytes) -> None:
        """The leader's pre-warm recommendations, for every replica to answer with."""
        with store_errors():
            await self.leadership.fenced_hset(
                self.keys.recommendations,
                {"record": record.decode(), "by": self.replica_id}, RECOMMENDATIONS_SECONDS)

    async def read_recommendations(self) -> bytes | None:
        with store_errors():
            found = await self.client.hget(self.keys.recommendations, "record")
        return found.encode() if isinstance(found, str) else found

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        loops = {"leader-lease": self.leadership.run_forever,
                 "fleet-sync": lambda: self._every(self.period, self.sync),
                 "budget-reconciliation": lambda: self._every(self.budget.interval,
                                                              self.budget.run_once)}
        for name, loop in loops.items():
            self.supervisor.start(name, loop)
        try:
            yield
        finally:
            await self.supervisor.stop(*loops)
            with contextlib.suppress(StoreError), store_errors():
                # Three slots on a cluster: no transaction (none is needed to leave).
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.delete(self.keys.replica_metrics(self.replica_id),
                                self.keys.replica_card(self.replica_id))
                    pipe.zrem(self.keys.replicas, self.replica_id)
                    await pipe.execute()

    async def sync(self) -> None:
        """One round: publish our figures, read the fleet's, adopt the leader's checks."""
        with store_errors():
            await self.publish_metrics()
            await self.merge_metrics()
            if not self.leadership.leading:
                await self.adopt_health()
                await self.adopt_engine()

    # -- backend figures -----------------------------------------------------------------
    async def publish_metrics(self) -> None:
        fields: dict[FieldT, EncodableT] = {b.name: _encode(_figures(b))
                                            for b in self.registry}
        key = self.keys.replica_metrics(self.replica_id)
        now, ttl = time.time(), max(1, round(self.ttl))
        # The figures live in this replica's slot and the registry in the control slot:
        # one round trip, no transaction (a half-done publish is redone next period).
        async with self.client.pipeline(transaction=False) as pipe:
            if fields:
                pipe.hset(key, mapping=fields)
                pipe.expire(key, ttl)
            if self.card is not None:
                pipe.set(self.keys.replica_card(self.replica_id), self.card(), ex=ttl)
            pipe.zadd(self.keys.replicas, {self.replica_id: now})
            pipe.zremrangebyscore(self.keys.replicas, "-inf", now - FORGET_REPLICA_SECONDS)
            await pipe.execute()

    @property
    def ttl(self) -> float:
        return self.period * METRICS_TTL_PERIODS

    async def live_replicas(self) -> list[str]:
        """Replicas that published within the metrics TTL, ourselves excluded."""
        since = time.time() - self.ttl
        members = await self.client.zrangebyscore(self.keys.replicas, since, "+inf")
        return [str(m) for m in members if m != self.replica_id]

    async def cards(self) -> list[bytes]:
        """The other live replicas' cards, as they published them."""
        with store_errors():
            others = await self.live_replicas()
            if not others:
                return []
            async with self.client.pipeline(transaction=False) as pipe:  # a slot each
                for replica in others:
                    pipe.get(self.keys.replica_card(replica))
                found = await pipe.execute()
        return [raw.encode() if isinstance(raw, str) else raw for raw in found if raw]

    async def merge_metrics(self) -> None:
        """Sum the other replicas' figures into each backend's remote fields. A replica
        that died stops publishing; its key expires and its share ages out."""
        others = await self.live_replicas()
        self.replica_count = len(others) + 1
        published: list[dict[str, str]] = []
        if others:
            async with self.client.pipeline(transaction=False) as pipe:
                for replica in others:
                    pipe.hgetall(self.keys.replica_metrics(replica))
                published = await pipe.execute()
        totals = {b.name: _Merged() for b in self.registry}
        now_minute = int(time.time() // 60)
        for figures_by_backend in published:
            for name, raw in figures_by_backend.items():
                merged = totals.get(name)
                if merged is not None:
                    merged.add(_figures_decoder.decode(raw), now_minute)
        for backend in self.registry:
            merged = totals[backend.name]
            state = backend.state
            state.remote_in_flight = merged.in_flight
            state.metrics.set_remote(merged.successes, merged.errors, *merged.ttft)
            state.set_remote_latency(*merged.latency)

    # -- health, checked by the leader ---------------------------------------------------
    async def publish_health(self) -> None:
        """Publish the leader's check results; a store failure waits for the next round."""
        with contextlib.suppress(StoreError), store_errors():
            await self._publish_health()

    async def _publish_health(self) -> None:
        now = time.time()
        fields: dict[str, str | int | float] = {b.name: _encode(PublishedHealth(
            state=b.health.state.value, reason=b.health.reason, models=sorted(b.discovered),
            eta=b.health.eta, checked_at=now, by=self.replica_id, windows=b.state.windows,
            capabilities={m: sorted(c) for m, c in b.state.capabilities.items()},
            sizes=b.state.sizes)).decode()
            for b in self.registry}
        if fields:
            await self.leadership.fenced_hset(self.keys.health, fields)

    async def adopt_health(self) -> None:
        published = await self.client.hgetall(self.keys.health)
        changed = False
        newest = self._health_seen
        for name, raw in published.items():
            backend = self.registry.get(str(name))
            if backend is None:
                continue
            seen = _health_decoder.decode(raw)
            if seen.checked_at <= self._health_seen:
                continue
            newest = max(newest, seen.checked_at)
            backend.health.adopt(Health(seen.state), seen.reason, seen.eta)
            backend.set_discovered(frozenset(seen.models), seen.windows,
                                   {m: frozenset(c) for m, c in seen.capabilities.items()},
                                   seen.sizes)
            changed = True
        self._health_seen = newest
        if changed:
            self.registry.reindex()

    # -- engine signals, read by the leader -----------------------------------------------
    async def publish_engine(self) -> None:
        """Publish what the leader's scrapes read; a store failure waits for the next."""
        with contextlib.suppress(StoreError), store_errors():
            now, mono = time.time(), time.monotonic()
            fields: dict[str, str | int | float] = {
                b.name: _encode(PublishedEngine(
                    signals=b.state.engine, read_unix=now - (mono - b.state.engine.read_at)
                )).decode() for b in self.registry if b.state.engine is not None}
            if fields:
                await self.leadership.fenced_hset(self.keys.engine, fields)

    async def adopt_engine(self) -> None:
        """The leader's readings, each as old here as it was when read there."""
        published = await self.client.hgetall(self.keys.engine)
        now, mono = time.time(), time.monotonic()
        for name, raw in published.items():
            backend = self.registry.get(str(name))
            if backend is None:
                continue
            seen = _engine_decoder.decode(raw)
            signals = msgspec.structs.replace(seen.signals,
                                              read_at=mono - max(0.0, now - seen.read_unix))
            if backend.state.engine is None or signals.read_at > backend.state.engine.read_at:
                backend.state.engine = signals

    @staticmethod
    async def _every(seconds: float, action: Callable[[], Awaitable[object]]) -> None:
        """Run `action` every `seconds`; a store failure waits for the next round (the
        store's circuit and log say it), anything else crashes to the supervisor."""
        async for _ in ticks(seconds):
            stop_if_cancelled()
            try:
                await action()
            except StoreError:
                stop_if_cancelled()
