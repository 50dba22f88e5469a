"""The parts one replica runs, wired together, with their start and stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiohttp

from nexus.backends.checker import HealthChecker
from nexus.backends.lifecycle import ModelOps
from nexus.backends.recorder import OutcomeRecorder
from nexus.backends.registry import Registry
from nexus.backends.responses_support import ResponsesSupport
from nexus.backends.scraper import EngineScraper
from nexus.backends.stats import Stats
from nexus.client import BackendClient
from nexus.config.errors import ConfigError
from nexus.config.schema import Config
from nexus.core.tasks import LoopFactory, Supervisor
from nexus.fleet.fleet import Fleet
from nexus.fleet.mdns import MdnsDiscovery
from nexus.fleet.placement import Placement
from nexus.fleet.prewarm import Prewarm
from nexus.fleet.roster import Roster
from nexus.proxy.admission import Admission
from nexus.proxy.billing import Holds
from nexus.proxy.feed import Feed, stage_names
from nexus.proxy.forwarder import Books, Forwarder
from nexus.proxy.waiting import WaitQueue
from nexus.routing.router import Router
from nexus.store import store_for
from nexus.store.base import Store
from nexus.store.errors import StoreError
from nexus.store.redis_store import RedisStore

log = logging.getLogger(__name__)


class Gateway:
    def __init__(self, config: Config, environ: dict[str, str] | None = None,
                 store: Store | None = None) -> None:
        self.config = config
        self.environ = environ or dict(os.environ)
        self.replica_id = config.fleet.replica_id or default_replica_id()
        self.registry = Registry.from_config(config, self.environ)
        self.store: Store = store or store_for(config)
        self.fleet: Fleet | None = None
        self.supervisor = Supervisor()  # every background loop of this replica
        if isinstance(self.store, RedisStore):
            self.store.replica_id = self.replica_id
            self.fleet = Fleet(config, self.store, self.registry, self.replica_id,
                               self.supervisor)
        fleet = self.fleet
        self.stats = Stats()
        self.admission = Admission(self.store,
                                   (lambda: fleet.replica_count) if fleet else (lambda: 1),
                                   self.stats.rate_checks, config.routing.default_output_tokens)
        self.router = Router(config.routing, self.registry, quality=config.quality,
                             queue=config.queue, budget_view=self.store.budget_view,
                             tenant_spend=self.store.tenant_spend,
                             health=config.health_check)
        self.waiting = WaitQueue(config.queue)
        self.recorder = OutcomeRecorder(self.stats)  # the one writer of backend state
        self.feed = Feed(stage_names(self.router))  # recent decisions, for the dashboard
        self._session: aiohttp.ClientSession | None = None
        self._forwarder: Forwarder | None = None
        self.checker: HealthChecker | None = None
        self.responses_support = ResponsesSupport(None)  # asks servers once running
        self.placement = Placement(self.store, self.registry, self.replica_id,
                                   config.lifecycle)
        self.roster = Roster(self.store, self.registry, config, self.environ)
        self.prewarm = Prewarm(self.store, self.registry, self.placement, config.fleet,
                               self.replica_id)
        if fleet is not None:  # the leader computes; every replica answers from Redis
            self.prewarm.leading = lambda: fleet.leadership.leading
            self.prewarm.publish = fleet.publish_recommendations
            self.prewarm.read_published = fleet.read_recommendations
        self.mdns = MdnsDiscovery(self.registry, config, self.environ) \
            if config.discovery.enabled else None
        if self.mdns is not None:
            _zeroconf_or_config_error()

    @property
    def forwarder(self) -> Forwarder:
        assert self._forwarder is not None, "the gateway is not started"
        return self._forwarder

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        async with aiohttp.ClientSession(connector=connector) as session:
            self._session = session
            client = BackendClient(session)
            self.responses_support.session = session
            self.placement.ops = ModelOps(session, config_step_timeout(self.config))
            books = Books(self.admission, Holds(self.store, self.config.routing.budget,
                                               self.config.server.request_timeout_seconds,
                                               self.store.tenant_spend),
                          self.store)
            self._forwarder = Forwarder(self.router, client, self.recorder, self.waiting,
                                        books, self.feed, self.config.server,
                                        self.config.routing.max_retries)
            tracer_provider = self._start_tracing(self._forwarder)
            checker = HealthChecker(self.registry, session, self.config.health_check,
                                    self.recorder, on_checked=self.waiting.wake_all)
            self.checker = checker
            self.roster.session, self.roster.checked = session, checker.check_one
            await self.store.start(self.supervisor)
            with contextlib.suppress(StoreError):  # backends added at run time, before
                await self.roster.sync()           # the first health check
            try:
                async with self._fleet_running(), self._health_loop(checker), \
                        self._engine_loop(EngineScraper(self.registry, session, self.recorder)), \
                        self.supervisor.running("stall-watch", self._forwarder.watch.run_forever), \
                        self.supervisor.running("lifecycle-sync", self.placement.sync_forever), \
                        self.supervisor.running("roster-sync", self.roster.sync_forever), \
                        self.supervisor.running("prewarm", self.prewarm.run_forever), \
                        self._mdns_running(checker):
                    yield
            finally:
                self.waiting.wake_all()
                await self.responses_support.close()
                await self.placement.close()
                await client.close()
                await self.store.close()
                if tracer_provider is not None:  # what is batched goes to the collector
                    await asyncio.to_thread(tracer_provider.shutdown)

    def _start_tracing(self, forwarder: Forwarder) -> Any:
        """Traces, when `[tracing]` or OTEL_TRACES_EXPORTER=otlp asks for them: OpenTelemetry
        (the `otel` extra) is imported only then. Returns the provider to shut down."""
        config = self.config.tracing
        wanted = config.enabled if config.enabled is not None else \
            self.environ.get("OTEL_TRACES_EXPORTER", "").strip() == "otlp"
        if not wanted:
            return None
        try:
            from nexus.proxy.tracing import start_tracing
        except ImportError as exc:
            raise ConfigError("configuration", "tracing.enabled", "tracing is on, but "
                              "OpenTelemetry is not installed: pip install "
                              f"'nexus-gateway[otel]' ({exc})") from None
        forwarder.tracing, provider = start_tracing(config, self.environ)
        return provider

    @contextlib.asynccontextmanager
    async def _mdns_running(self, checker: HealthChecker) -> AsyncIterator[None]:
        if self.mdns is None:
            yield
            return
        self.mdns.checked = checker.check_one
        async with self.supervisor.running("mdns-discovery", self.mdns.run_forever):
            yield

    @contextlib.asynccontextmanager
    async def _fleet_running(self) -> AsyncIterator[None]:
        if self.fleet is None:
            yield
            return
        async with self.fleet.running():
            yield


    @contextlib.asynccontextmanager
    async def _engine_loop(self, scraper: EngineScraper) -> AsyncIterator[None]:
        """The engines' own load signals, read off the request path: by the leader for
        the fleet (published with its health), or by this replica alone. It runs with
        no engine to read too: backends added at run time may have one."""
        fleet = self.fleet
        if fleet is None:
            scrapes: LoopFactory = scraper.run_forever
        else:
            def scrapes() -> Coroutine[object, object, None]:
                return scraper.run_forever(lambda: fleet.runs_health_checks,
                                           fleet.publish_engine)
        async with self.supervisor.running("engine-signals", scrapes):
            yield

    @contextlib.asynccontextmanager
    async def _health_loop(self, checker: HealthChecker) -> AsyncIterator[None]:
        if not self.config.health_check.enabled:
            yield
            return
        await checker.check_all()  # discover models before the first request arrives
        fleet = self.fleet
        if fleet is None:
            checks: LoopFactory = checker.run_forever
        else:  # the leader checks for the fleet and publishes; the others adopt its results
            def checks() -> Coroutine[object, object, None]:
                return checker.run_forever(lambda: fleet.runs_health_checks,
                                           fleet.publish_health)
        async with self.supervisor.running("health-checks", checks):
            yield


def _zeroconf_or_config_error() -> None:
    try:
        import zeroconf  # noqa: F401
    except ImportError as exc:
        raise ConfigError("configuration", "discovery.enabled", "mDNS discovery is on, but "
                          "zeroconf is not installed: pip install 'nexus-gateway[mdns]' "
                          f"({exc})") from None


def default_replica_id() -> str:
    """host-pid-random: unique across machines, processes and restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


def config_step_timeout(config: Config) -> float:
    """How long one step of a lifecycle operation may go without a byte from the server."""
    return config.lifecycle.operation_timeout_seconds
