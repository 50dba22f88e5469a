"""Read each backend's engine signals on its interval, off the request path.

Which engine a backend runs comes from `engine` in its config ("auto": by its type:
vllm → vLLM's /metrics, llamacpp → llama-server's /metrics and /props (and, in
router mode, /models: which models are in memory, which sleep), ollama → /api/ps;
"sglang" for an SGLang server behind a generic type; "off" for none). A
scrape that fails leaves the last reading to go stale: it says nothing of the
backend's health, which the health checks decide.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec

from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers
from nexus.backends.engine import (
    LLAMACPP,
    SGLANG,
    VLLM,
    EngineSignals,
    parse_ollama_ps,
    parse_prometheus,
    parse_props_slots,
    parse_router_models,
)
from nexus.backends.recorder import OutcomeRecorder
from nexus.backends.registry import Registry
from nexus.core.tasks import ticks

log = logging.getLogger(__name__)
BY_TYPE = {"vllm": "vllm", "llamacpp": "llamacpp", "ollama": "ollama"}
PROMETHEUS = {"vllm": VLLM, "sglang": SGLANG, "llamacpp": LLAMACPP}
STALE_AFTER_INTERVALS = 3  # a reading older than this many intervals is not trusted
MIN_MAX_AGE_SECONDS = 2.0
DEFAULT_STEP_SECONDS = 1.0  # with no engine to read yet: how often to look again


def engine_of(backend: Backend) -> str | None:
    """The engine whose signals this backend is read for; None: not read."""
    engine = backend.config.engine
    if engine == "auto":
        return BY_TYPE.get(backend.config.type)
    return None if engine == "off" else engine


class EngineScraper:
    def __init__(self, registry: Registry, session: aiohttp.ClientSession,
                 recorder: OutcomeRecorder) -> None:
        self.registry = registry
        self.session = session
        self.recorder = recorder
        self._slots: dict[str, int | None] = {}   # llama-server's, asked once
        self._router: dict[str, bool] = {}  # llama-server: in router mode (has /models)?
        self._due: dict[str, float] = {}

    @property
    def backends(self) -> list[tuple[Backend, str]]:
        return [(b, engine) for b in self.registry if (engine := engine_of(b)) is not None]

    async def run_forever(self, should_scrape: Callable[[], bool] = lambda: True,
                          publish: Callable[[], Awaitable[None]] | None = None) -> None:
        """Scrape whatever is due, as often as the shortest interval asks; in a fleet
        only the leader scrapes (`should_scrape`) and publishes what it read."""
        # Backends added at run time are scraped too: the loop runs even with none yet.
        step = min((b.config.engine_interval_seconds for b, _ in self.backends),
                   default=DEFAULT_STEP_SECONDS)
        async for _ in ticks(step):
            if should_scrape() and self.backends:
                await self.scrape_due()
                if publish is not None:
                    await publish()

    async def scrape_due(self) -> None:
        now = time.monotonic()
        due = [(b, e) for b, e in self.backends if self._due.get(b.name, 0.0) <= now]
        for backend, _ in due:
            self._due[backend.name] = now + backend.config.engine_interval_seconds
        await asyncio.gather(*(self.scrape(b, e) for b, e in due))

    async def scrape(self, backend: Backend, engine: str) -> None:
        interval = backend.config.engine_interval_seconds
        max_age = max(MIN_MAX_AGE_SECONDS, STALE_AFTER_INTERVALS * interval)
        try:
            async with asyncio.timeout(interval):  # a reading later than that is no use
                signals = await self._read(backend, engine, max_age)
        except (aiohttp.ClientError, TimeoutError, ValueError, UnicodeDecodeError) as exc:
            log.debug("engine signals of %s not read: %s", backend.name, exc)
            return
        if signals is not None:  # with the fleet's own share of what it counted
            self.recorder.engine(backend, msgspec.structs.replace(
                signals, ours=min(backend.fleet_in_flight, signals.running + signals.waiting)))

    async def _read(self, backend: Backend, engine: str,
                    max_age: float) -> EngineSignals | None:
        if engine == "ollama":
            body = await self._get(backend, "/api/ps")
            return None if body is None else parse_ollama_ps(body, backend.fleet_in_flight,
                                                             max_age)
        text = await self._get(backend, "/metrics")
        if engine != "llamacpp":
            return None if text is None else parse_prometheus(text.decode(),
                                                              PROMETHEUS[engine], max_age)
        slots = await self._llamacpp_slots(backend)
        signals = None if text is None else parse_prometheus(text.decode(), LLAMACPP,
                                                             max_age, slots)
        loaded = await self._router_loaded(backend)
        if loaded is None:
            return signals
        if signals is None:  # a router without --metrics still says what is loaded
            signals = EngineSignals(running=backend.fleet_in_flight,
                                    read_at=time.monotonic(), max_age=max_age)
        return msgspec.structs.replace(signals, loaded=loaded)

    async def _router_loaded(self, backend: Backend) -> frozenset[str] | None:
        if self._router.get(backend.name) is False:
            return None
        body = await self._get(backend, "/models")
        self._router[backend.name] = body is not None  # a plain llama-server: 404
        return None if body is None else parse_router_models(body)

    async def _llamacpp_slots(self, backend: Backend) -> int | None:
        if backend.name not in self._slots:
            body = await self._get(backend, "/props")
            self._slots[backend.name] = None if body is None else parse_props_slots(body)
        return self._slots[backend.name]

    async def _get(self, backend: Backend, path: str) -> bytes | None:
        async with self.session.get(backend.base_url + path,
                                    headers=request_headers(backend)) as response:
            if response.status != 200:
                return None
            return await response.read()
