"""One configured backend and what this replica knows about it right now."""

from __future__ import annotations

import os

from nexus.backends.health import HealthTracker
from nexus.backends.kinds import KINDS, Api, Kind, base_url
from nexus.backends.metrics import BackendMetrics, ema_step, fleet_mean
from nexus.config.schema import BackendConfig, HealthCheckConfig
from nexus.pricing import PriceTable

LATENCY_EMA_ALPHA = 0.2


class Backend:
    # Static facts the pipeline reads on every decision are copied into plain slots:
    # one attribute load each, no property call, no walk through `config`.
    __slots__ = ("_api_key", "base_url", "config", "context_window", "discovered", "free",
                 "health", "in_flight", "json_mode", "kind", "latency_ema_ms",
                 "local_latency_ema_ms", "max_concurrent", "metrics", "models", "name",
                 "openai_api", "prices", "priority", "remote_in_flight", "remote_latency",
                 "restricted_zone", "tier", "tools", "vision")

    def __init__(self, config: BackendConfig, health: HealthCheckConfig,
                 environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.config = config
        self.name = config.name
        self.kind: Kind = KINDS[config.type]
        self.base_url = base_url(config.url)
        self._api_key = env.get(config.api_key_env, "") if config.api_key_env else ""
        self.health = HealthTracker(health.failure_threshold, health.recovery_threshold)
        self.discovered: frozenset[str] = frozenset()
        self.models: frozenset[str] = frozenset(config.models)
        self.in_flight = 0         # this replica's requests to the backend now
        self.remote_in_flight = 0  # the other replicas', as last published
        self.local_latency_ema_ms: float | None = None  # this replica's observations
        self.remote_latency: tuple[float, int] = (0.0, 0)  # others' EMAs: (sum, count)
        self.latency_ema_ms: float | None = None  # the fleet's: what routing reads
        self.metrics = BackendMetrics()
        self.prices = PriceTable(config, self.kind.cloud)
        self.free = self.prices.always_free
        self.priority = config.priority
        self.tier = config.tier
        self.max_concurrent = config.max_concurrent
        self.restricted_zone = config.zone == "restricted"
        self.openai_api = self.kind.api is Api.OPENAI  # serves every endpoint, not chat only
        can = config.capabilities
        self.vision, self.tools, self.json_mode = can.vision, can.tools, can.json_mode
        self.context_window = can.context_window
        if self.kind.cloud and not self._api_key:
            self.health.unreachable(f"environment variable {config.api_key_env} is not set")

    def __repr__(self) -> str:  # never shows the key
        return f"Backend({self.name!r}, {self.config.type}, {self.health.state.value})"

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def is_cloud(self) -> bool:
        return self.kind.cloud

    @property
    def api(self) -> Api:
        return self.kind.api

    @property
    def fleet_in_flight(self) -> int:
        return self.in_flight + self.remote_in_flight

    @property
    def load(self) -> float:
        return min(1.0, (self.in_flight + self.remote_in_flight) / self.max_concurrent)

    def set_discovered(self, models: frozenset[str]) -> None:
        self.discovered = models
        self.models = models | frozenset(self.config.models)

    def observe_latency(self, millis: float) -> None:
        self.local_latency_ema_ms = ema_step(self.local_latency_ema_ms, millis,
                                             LATENCY_EMA_ALPHA)
        self.latency_ema_ms = fleet_mean(self.local_latency_ema_ms, *self.remote_latency)

    def set_remote_latency(self, total: float, count: int) -> None:
        """The other replicas' latency averages for this backend (sum, how many)."""
        self.remote_latency = (total, count)
        self.latency_ema_ms = fleet_mean(self.local_latency_ema_ms, total, count)

