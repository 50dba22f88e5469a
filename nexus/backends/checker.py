"""Active health checks: model discovery on every backend, every interval."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec

from nexus.backends.backend import Backend
from nexus.backends.causes import connection_failure
from nexus.backends.discovery import (
    Discovery,
    is_loading,
    loading_eta,
    ollama_sizes,
    parse_models,
    request_headers,
)
from nexus.backends.model_cards import ModelCards
from nexus.backends.recorder import OutcomeRecorder
from nexus.backends.registry import Registry
from nexus.config.schema import HealthCheckConfig
from nexus.core.tasks import ticks

log = logging.getLogger(__name__)


class HealthChecker:
    def __init__(self, registry: Registry, session: aiohttp.ClientSession,
                 config: HealthCheckConfig, recorder: OutcomeRecorder | None = None,
                 on_checked: Callable[[], None] = lambda: None) -> None:
        self.registry = registry
        self.recorder = recorder or OutcomeRecorder()
        self.cards = ModelCards(session, config.timeout_seconds)
        self.session = session
        self.config = config
        self.on_checked = on_checked  # e.g. wake queued requests: a backend may be back

    async def run_forever(self, should_check: Callable[[], bool] = lambda: True,
                          after: Callable[[], Awaitable[object]] | None = None) -> None:
        """Check every interval while `should_check()` (in a fleet: while this replica
        leads), then run `after` (in a fleet: publish the results)."""
        ticking = ticks(self.config.interval_seconds)
        await anext(ticking)  # the first round ran at start-up
        async for _ in ticking:
            if should_check():
                await self.check_all()
                if after is not None:
                    await after()

    async def check_all(self) -> None:
        backends = list(self.registry)  # as it is now: one may be added meanwhile
        results = await asyncio.gather(*(self.discover(b) for b in backends))
        for backend, result in zip(backends, results, strict=True):
            self.recorder.checked(backend, result)
        self.registry.reindex()
        self.on_checked()

    async def check_one(self, backend: Backend) -> None:
        """A backend just added: its models now, not at the next round."""
        self.recorder.checked(backend, await self.discover(backend))
        self.registry.reindex()
        self.on_checked()

    async def discover(self, backend: Backend) -> Discovery:
        if backend.is_cloud and not backend.api_key:
            return Discovery(error=backend.health.reason)
        url = backend.base_url + backend.kind.discovery_path
        timeout = aiohttp.ClientTimeout(total=self.config.timeout_seconds)
        try:
            async with self.session.get(url, headers=request_headers(backend),
                                        timeout=timeout) as response:
                body = await response.read()
                status, retry_after = response.status, response.headers.get("Retry-After")
        except TimeoutError:
            return Discovery(error=f"health check timed out after "
                                   f"{self.config.timeout_seconds:g} s")
        except aiohttp.ClientError as exc:
            return Discovery(error=f"unreachable: {connection_failure(exc)}")
        found = self._interpret(backend, status, body, retry_after)
        if found.models is None or backend.is_cloud:
            return found
        windows, capabilities = await self.cards.read(backend, found.models, body)
        return msgspec.structs.replace(found, windows=windows, capabilities=capabilities)

    def _interpret(self, backend: Backend, status: int, body: bytes,
                   retry_after: str | None) -> Discovery:
        if is_loading(status, body):
            return Discovery(loading=True, loading_eta=loading_eta(body, retry_after))
        if status != 200:
            return Discovery(error=f"model discovery answered HTTP {status}")
        try:
            kind = backend.config.type
            return Discovery(models=parse_models(kind, body),
                             sizes=ollama_sizes(body) if kind == "ollama" else {})
        except (ValueError, KeyError, TypeError, AttributeError):  # not the shape it should be
            return Discovery(error="model discovery returned an unreadable model list")
