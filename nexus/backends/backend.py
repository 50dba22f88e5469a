"""One configured backend: what it is (static facts the pipeline reads) and, in
`state`, what is happening to it (health, load, figures), which only the outcome
recorder and the fleet merge change."""

from __future__ import annotations

import os

from nexus.backends.health import HealthTracker
from nexus.backends.kinds import KINDS, Api, Kind, base_url
from nexus.backends.metrics import BackendMetrics
from nexus.backends.state import BackendState
from nexus.backends.transition import Transition
from nexus.backends.windows import CONFIGURED, ContextWindow
from nexus.budget.prices import PriceTable
from nexus.config.schema import BackendConfig, HealthCheckConfig
from nexus.core.masking import mask_url


class Backend:
    # Static facts the pipeline reads on every decision are copied into plain slots:
    # one attribute load each, no property call, no walk through `config`.
    __slots__ = ("_api_key", "base_url", "config", "context_window", "free", "health",
                 "json_mode", "kind", "load_seconds", "max_concurrent", "metrics", "models", "name",
                 "openai_api", "origin", "prices", "priority", "restricted_zone", "shown_url",
                 "state", "tier", "tools", "transitions", "vision")

    def __init__(self, config: BackendConfig, health: HealthCheckConfig,
                 environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.config = config
        self.name = config.name
        self.kind: Kind = KINDS[config.type]
        self.base_url = base_url(config.url)
        # The URL as anything outside the process may see it: no userinfo or query secret.
        self.shown_url = mask_url(self.base_url)
        self._api_key = env.get(config.api_key_env, "") if config.api_key_env else ""
        self.state = BackendState(health.failure_threshold, health.recovery_threshold)
        # The state's two objects, also here: routing reads them for every candidate.
        self.health: HealthTracker = self.state.health
        self.metrics: BackendMetrics = self.state.metrics
        self.models: frozenset[str] = frozenset(config.models)
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
        # model → its load or unload under way (lifecycle operations, fleet-wide)
        self.transitions: dict[str, Transition] = {}
        # model → how long its last load here took (s), measured by a lifecycle
        # operation anywhere in the fleet: what a cold model costs a request
        self.load_seconds: dict[str, float] = {}
        # Where it came from: "config" (the file; fixed while running), "api" (added at
        # run time, kept in the store), "mdns" (found on the network)
        self.origin = "config"
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

    # -- the state, read as the pipeline reads it --------------------------------------
    @property
    def in_flight(self) -> int:
        return self.state.in_flight

    @in_flight.setter
    def in_flight(self, value: int) -> None:  # tests set the load they route against
        self.state.in_flight = value

    @property
    def remote_in_flight(self) -> int:
        return self.state.remote_in_flight

    @property
    def fleet_in_flight(self) -> int:
        return self.state.in_flight + self.state.remote_in_flight

    @property
    def load(self) -> float:
        return min(1.0, self.fleet_in_flight / self.max_concurrent)

    @property
    def latency_ema_ms(self) -> float | None:
        return self.state.latency_ema_ms

    @property
    def local_latency_ema_ms(self) -> float | None:
        return self.state.local_latency_ema_ms

    @property
    def discovered(self) -> frozenset[str]:
        return self.state.discovered

    def set_discovered(self, models: frozenset[str],
                       windows: dict[str, ContextWindow] | None = None,
                       capabilities: dict[str, frozenset[str]] | None = None,
                       sizes: dict[str, int] | None = None) -> None:
        state = self.state
        state.discovered = models
        if sizes is not None:
            state.sizes = sizes
        if windows is not None:
            state.windows = windows
        if capabilities is not None:
            state.capabilities = capabilities
        self.models = models | frozenset(self.config.models)

    def window(self, model: str) -> ContextWindow | None:
        """The model's context window here: the config's when set, else the server's."""
        if self.context_window is not None:
            return ContextWindow(self.context_window, CONFIGURED)
        return self.state.windows.get(model)

    def window_tokens(self, model: str) -> int | None:
        if self.context_window is not None:  # routing asks per candidate: no struct made
            return self.context_window
        window = self.state.windows.get(model)
        return None if window is None else window.tokens

    def can(self, model: str, what: str) -> bool:
        """Whether the model handles "vision", "tools" or "json_mode": the config can
        say no for the whole backend; Ollama's card can say no for one model."""
        if not getattr(self, what):
            return False
        reported = self.state.capabilities.get(model)
        return reported is None or what == "json_mode" or what in reported

    def honours(self, json_format: str | None) -> bool:
        """Whether this API can honour the response_format type asked for."""
        return json_format is None or json_format in self.kind.json_formats

    def observe_latency(self, millis: float) -> None:
        self.state.observe_latency(millis)
