"""Backends added and removed at run time (`nexus backends add|remove`), for the fleet.

An added backend is kept in the store, so every replica serves it (each reads the
store's list every `[lifecycle] sync_interval_seconds`, off the request path) and so
does one that restarts. The replica that adds it checks it at once: its models are
routable before the answer. A backend from the configuration file is fixed while the
gateway runs: removing it is refused, with the reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

import aiohttp
import msgspec
from msgspec import Meta
from yarl import URL

from nexus.backends.backend import Backend
from nexus.backends.detect import NotDetected, detect_type, name_for
from nexus.backends.registry import Registry
from nexus.config.schema import BackendConfig, BackendType, Config, Tier, Zone
from nexus.core.errors import BadRequest, Conflict, NotFound
from nexus.core.masking import mask_url
from nexus.core.tasks import stop_if_cancelled
from nexus.store.base import Roster as RosterStore
from nexus.store.errors import StoreError

log = logging.getLogger(__name__)
Checked = Callable[[Backend], Awaitable[None]]
BackendName = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
CLOUD_TYPES = frozenset({"openai", "anthropic", "gemini"})


class AddBackend(msgspec.Struct, forbid_unknown_fields=True):
    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    type: BackendType | Literal["auto"] | None = None  # None or "auto": detected
    name: BackendName | None = None
    zone: Zone = "open"
    tier: Tier = 1
    priority: Annotated[int, Meta(ge=0, le=100)] = 50
    max_concurrent: Annotated[int, Meta(ge=1)] = 32
    vram_gb: Annotated[float, Meta(gt=0, le=100_000)] | None = None  # for pre-warm's room
    models: list[Annotated[str, Meta(min_length=1, max_length=256)]] = \
        msgspec.field(default_factory=list)


_decode_config = msgspec.json.Decoder(BackendConfig).decode


class Roster:
    def __init__(self, store: RosterStore, registry: Registry, config: Config,
                 environ: dict[str, str]) -> None:
        self.store = store
        self.registry = registry
        self.config = config
        self.environ = environ
        self.session: aiohttp.ClientSession | None = None  # set once the replica runs
        self.checked: Checked | None = None  # checks a new backend (the health checker)
        self._checking: set[asyncio.Task[None]] = set()

    async def add(self, wanted: AddBackend) -> dict[str, Any]:
        url = _checked_url(wanted.url)
        name = wanted.name or name_for(url, {b.name for b in self.registry})
        if self.registry.get(name) is not None:
            raise Conflict(f"a backend named '{name}' exists", param="name")
        kind = wanted.type if wanted.type not in (None, "auto") else await self._detect(url)
        config = _backend_config(wanted, name, url, str(kind))
        if self.registry.get(name) is not None or \
                not await self.store.add_backend(name, msgspec.json.encode(config)):
            raise Conflict(f"a backend named '{name}' exists", param="name")
        backend = self.registry.get(name) or self._adopt(config)  # a sync may have been first
        if self.checked is not None:
            await self.checked(backend)
        log.info("backend %s (%s, %s) added at run time", name, kind, backend.shown_url)
        return view(backend)

    async def _detect(self, url: str) -> str:
        assert self.session is not None, "the replica is not running"
        try:
            return await detect_type(self.session, url)
        except NotDetected as exc:
            raise BadRequest(str(exc), param="url", code="backend_not_detected") from None

    async def remove(self, name: str) -> dict[str, Any]:
        backend = self.registry.get(name)
        if backend is None:
            raise NotFound(f"no backend named '{name}'", param="name",
                           code="backend_not_found")
        if backend.origin == "config":
            raise Conflict(f"backend '{name}' comes from the configuration file: remove it "
                           "there and restart the gateway", param="name")
        if backend.origin == "mdns":
            raise Conflict(f"backend '{name}' was found by mDNS discovery: it leaves when "
                           "its service does", param="name")
        await self.store.delete_backend(name)
        self.registry.remove(name)
        log.info("backend %s removed at run time", name)
        return view(backend)

    def _adopt(self, config: BackendConfig) -> Backend:
        backend = Backend(config, self.config.health_check, self.environ)
        backend.origin = "api"
        self.registry.add(backend)
        return backend

    # -- the fleet's list ----------------------------------------------------------------
    async def sync(self) -> None:
        """Serve what the store lists (added on any replica); drop what it no longer does."""
        records = await self.store.runtime_backends()
        for name, raw in records.items():
            if self.registry.get(name) is None:
                self._adopt_from_store(name, raw)
        for backend in list(self.registry):
            if backend.origin == "api" and backend.name not in records:
                self.registry.remove(backend.name)  # removed elsewhere, or Redis was wiped
                log.info("backend %s is no longer in the store: no longer served",
                         backend.name)

    def _adopt_from_store(self, name: str, raw: bytes) -> None:
        try:
            backend = self._adopt(_decode_config(raw))
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
            log.warning("the store's backend %s cannot be served: %s", name, exc)
            return
        if self.checked is not None:  # its models now, off the request path
            task = asyncio.ensure_future(self.checked(backend))
            self._checking.add(task)
            task.add_done_callback(self._checking.discard)

    async def sync_forever(self) -> None:
        try:
            while True:
                with contextlib.suppress(StoreError):
                    await self.sync()
                stop_if_cancelled()  # redis-py may swallow a cancel, or turn it into an error
                await asyncio.sleep(self.config.lifecycle.sync_interval_seconds)
        finally:  # checks still running would outlive the replica's session
            for task in list(self._checking):
                task.cancel()


def _checked_url(url: str) -> str:
    try:
        parsed = URL(url)
    except ValueError:
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise BadRequest(f"expected an http(s) URL with a host, got {mask_url(url)!r}",
                         param="url")
    if parsed.user or parsed.password or parsed.query_string:
        raise BadRequest("a backend URL added at run time carries no credentials: "
                         "userinfo and query strings are refused", param="url")
    return url.rstrip("/")


def _backend_config(wanted: AddBackend, name: str, url: str, kind: str) -> BackendConfig:
    if kind in CLOUD_TYPES:
        raise BadRequest(f"type '{kind}' is a cloud API: add it in the configuration file "
                         "with its api_key_env", param="type")
    return msgspec.convert({"name": name, "url": url, "type": kind, "zone": wanted.zone,
                            "tier": wanted.tier, "priority": wanted.priority,
                            "max_concurrent": wanted.max_concurrent,
                            "vram_gb": wanted.vram_gb, "models": wanted.models},
                           BackendConfig)


def view(backend: Backend) -> dict[str, Any]:
    return {"name": backend.name, "url": backend.shown_url, "type": backend.config.type,
            "origin": backend.origin, "zone": backend.config.zone, "tier": backend.tier,
            "models": sorted(backend.models), "health": backend.health.state.value}
