"""What is happening to one backend right now: health, load and figures.

A `Backend` is what the configuration says a backend is; its `BackendState` is
what this replica has seen of it. The pipeline only reads state; the
`OutcomeRecorder` (request outcomes and active checks) and the fleet merge (the
other replicas' figures, the leader's checks) are the only writers.
"""

from __future__ import annotations

import time

from nexus.backends.engine import EngineSignals
from nexus.backends.health import HealthTracker
from nexus.backends.metrics import BackendMetrics, ema_step, fleet_mean
from nexus.backends.windows import ContextWindow

LATENCY_EMA_ALPHA = 0.2


class BackendState:
    __slots__ = ("capabilities", "discovered", "engine", "health", "in_flight", "latency_at",
                 "latency_ema_ms", "local_latency_ema_ms", "metrics", "remote_in_flight",
                 "remote_latency", "sizes", "windows")

    def __init__(self, failure_threshold: int, recovery_threshold: int) -> None:
        self.health = HealthTracker(failure_threshold, recovery_threshold)
        self.metrics = BackendMetrics()
        self.discovered: frozenset[str] = frozenset()
        self.windows: dict[str, ContextWindow] = {}  # by model, as the server reports them
        self.capabilities: dict[str, frozenset[str]] = {}  # by model (Ollama's /api/show)
        self.sizes: dict[str, int] = {}  # bytes on disk by model (Ollama's /api/tags)
        self.in_flight = 0         # this replica's requests to the backend now
        self.remote_in_flight = 0  # the other replicas', as last published
        self.local_latency_ema_ms: float | None = None  # this replica's observations
        self.remote_latency: tuple[float, int] = (0.0, 0)  # others' EMAs: (sum, count)
        self.latency_ema_ms: float | None = None  # the fleet's: what routing reads
        self.latency_at = 0.0  # time.monotonic() of the newest latency: it fades with age
        self.engine: EngineSignals | None = None  # what the server says of its load

    def observe_latency(self, millis: float) -> None:
        self.local_latency_ema_ms = ema_step(self.local_latency_ema_ms, millis,
                                             LATENCY_EMA_ALPHA)
        self.latency_ema_ms = fleet_mean(self.local_latency_ema_ms, *self.remote_latency)
        self.latency_at = time.monotonic()

    def set_remote_latency(self, total: float, count: int) -> None:
        """The other replicas' latency averages for this backend (sum, how many)."""
        if (total, count) != self.remote_latency:  # new figures: the average is fresh
            self.latency_at = time.monotonic()
        self.remote_latency = (total, count)
        self.latency_ema_ms = fleet_mean(self.local_latency_ema_ms, total, count)
