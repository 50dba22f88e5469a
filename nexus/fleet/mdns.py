"""Servers that announce themselves on the LAN (mDNS/DNS-SD), served as they come and go.

With `[discovery] enabled = true` each replica browses the configured service types
(`_ollama._tcp.local.` and `_llm._tcp.local.`) with zeroconf. A service's TXT record
may say `type` (ollama, vllm, llamacpp, lmstudio, generic), `api_path` (the path its
API sits under, before /v1) and `version`; an `_ollama._tcp` service is Ollama unless
it says otherwise. A found service becomes backend `mdns-<instance>` and is checked at
once. One that vanishes is marked unknown (its health checks decide; a server whose
announcement lapsed may still answer) and is removed after `grace_seconds` unless it
returns. Each replica browses for itself: they see the same network, and the names are
the same everywhere, so the fleet's shared health applies to them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.health import Health
from nexus.backends.registry import Registry
from nexus.config.schema import BackendConfig, Config

log = logging.getLogger(__name__)
Checked = Callable[[Backend], Awaitable[None]]
RESOLVE_MS = 3000
TYPES = frozenset({"ollama", "vllm", "llamacpp", "lmstudio", "generic"})
MAX_SERVICES = 256  # a network that announces more is not a fleet but a flood
_UNSAFE = re.compile(r"[^a-z0-9-]+")
_API_PATH = re.compile(r"^[A-Za-z0-9_.~/-]{0,200}$")


class Announced(msgspec.Struct, frozen=True):
    """What one service said: its instance name, type, addresses, port and TXT keys."""

    service: str                 # "gpu-1._llm._tcp.local."
    service_type: str            # "_llm._tcp.local."
    addresses: tuple[str, ...]
    port: int
    txt: dict[str, str]


def backend_name(service: str, service_type: str) -> str:
    instance = service.removesuffix("." + service_type).removesuffix(service_type)
    return "mdns-" + (_UNSAFE.sub("-", instance.lower()).strip("-")[:56] or "service")


def backend_config(found: Announced) -> BackendConfig | None:
    """The backend a service describes, or None when it cannot be served."""
    kind = found.txt.get("type", "").lower() or \
        ("ollama" if found.service_type.startswith("_ollama.") else "generic")
    if kind not in TYPES or not found.addresses or not 0 < found.port < 65536:
        return None
    path = found.txt.get("api_path", "").strip("/").removesuffix("v1").strip("/")
    if not _API_PATH.match(path) or ".." in path.split("/"):
        return None  # a TXT record is anyone's words: only a plain path is taken
    address = ipaddress.ip_address(found.addresses[0])
    host = f"[{address}]" if address.version == 6 else str(address)
    url = f"http://{host}:{found.port}" + (f"/{path}" if path else "")
    # Zone "open" whatever the TXT says: anyone on the LAN can announce a server, so
    # requests whose data must stay in the restricted zone never reach one.
    return BackendConfig(name=backend_name(found.service, found.service_type), url=url,
                         type=kind, zone="open")  # type: ignore[arg-type]  # in TYPES


class MdnsDiscovery:
    def __init__(self, registry: Registry, config: Config, environ: dict[str, str],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.config = config
        self.environ = environ
        self.clock = clock
        self.checked: Checked | None = None
        self._vanished: dict[str, float] = {}  # backend name -> when its service went
        self._tasks: set[asyncio.Task[None]] = set()

    # -- what a service's coming and going does ------------------------------------------
    def found(self, announced: Announced) -> Backend | None:
        config = backend_config(announced)
        if config is None:
            log.info("mDNS service %s cannot be served (type %r, port %d)",
                     announced.service, announced.txt.get("type"), announced.port)
            return None
        self._vanished.pop(config.name, None)
        known = self.registry.get(config.name)
        if known is not None and known.origin != "mdns":
            return None  # the name belongs to a configured or added backend
        if known is not None and known.config == config:
            return known
        if known is None and sum(b.origin == "mdns" for b in self.registry) >= MAX_SERVICES:
            log.warning("mDNS: %s not served: %d services already are", config.name,
                        MAX_SERVICES)
            return None
        if known is not None:  # it moved (new address or port): serve it where it is
            self.registry.remove(config.name)
        backend = Backend(config, self.config.health_check, self.environ)
        backend.origin = "mdns"
        self.registry.add(backend)
        log.info("mDNS: serving %s at %s (%s, version %s)", backend.name, backend.shown_url,
                 config.type, announced.txt.get("version", "?"))
        self._spawn(self.checked(backend) if self.checked else None)
        return backend

    def vanished(self, service: str, service_type: str) -> None:
        name = backend_name(service, service_type)
        backend = self.registry.get(name)
        if backend is None or backend.origin != "mdns":
            return
        self._vanished[name] = self.clock()
        backend.health.adopt(Health.UNKNOWN, "its mDNS service vanished; removed after "
                             f"{self.config.discovery.grace_seconds:g} s unless it returns",
                             None)

    def expire(self) -> list[str]:
        """Remove the backends whose services have been gone for the grace period."""
        now, grace = self.clock(), self.config.discovery.grace_seconds
        gone = [name for name, at in self._vanished.items() if now - at >= grace]
        for name in gone:
            del self._vanished[name]
            self.registry.remove(name)
            log.info("mDNS: %s removed, its service gone for %g s", name, grace)
        return gone

    # -- browsing ------------------------------------------------------------------------
    async def run_forever(self) -> None:
        from zeroconf import InterfaceChoice, ServiceStateChange
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

        discovery = self.config.discovery
        zeroconf = AsyncZeroconf(interfaces=discovery.interfaces or InterfaceChoice.All)

        async def resolve(service_type: str, name: str) -> None:
            info = AsyncServiceInfo(service_type, name)
            if await info.async_request(zeroconf.zeroconf, RESOLVE_MS) and info.port:
                self.found(Announced(service=name, service_type=service_type,
                                     addresses=tuple(info.parsed_addresses()),
                                     port=info.port, txt=_txt(info.properties)))

        def on_change(zeroconf: Any, service_type: str, name: str,
                      state_change: ServiceStateChange) -> None:
            if state_change is ServiceStateChange.Removed:
                self.vanished(name, service_type)
            else:
                self._spawn(resolve(service_type, name))

        browser = AsyncServiceBrowser(zeroconf.zeroconf, list(discovery.service_types),
                                      handlers=[on_change])
        try:
            while True:
                await asyncio.sleep(min(1.0, max(discovery.grace_seconds / 4, 0.05)))
                self.expire()
        finally:
            with contextlib.suppress(Exception):
                await browser.async_cancel()
            await zeroconf.async_close()
            for task in list(self._tasks):
                task.cancel()

    def _spawn(self, work: Awaitable[None] | None) -> None:
        if work is None:
            return
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("mDNS: a service could not be resolved: %s", task.exception())


def _txt(properties: dict[bytes, bytes | None]) -> dict[str, str]:
    return {k.decode(errors="replace").lower(): (v or b"").decode(errors="replace")
            for k, v in properties.items()}
