"""mDNS/DNS-SD discovery: a server announced on the network is served as it comes, is
marked unknown when its announcement goes, and is removed after the grace period;
what a TXT record says is taken only when it is plain."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from zeroconf import IPVersion, ServiceInfo
from zeroconf.asyncio import AsyncZeroconf

from nexus.backends.backend import Backend
from nexus.backends.health import Health
from nexus.backends.registry import Registry
from nexus.fleet.mdns import MAX_SERVICES, Announced, MdnsDiscovery, backend_config
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    backend,
    chat,
    make_config,
    until,
)

LOOPBACK = "127.0.0.1"


def announced(service: str = "gpu-1._llm._tcp.local.", service_type: str = "_llm._tcp.local.",
              addresses: tuple[str, ...] = ("192.168.1.20",), port: int = 8000,
              **txt: str) -> Announced:
    return Announced(service=service, service_type=service_type, addresses=addresses,
                     port=port, txt=txt)


# -- what a service says, read -----------------------------------------------------------------
@pytest.mark.parametrize(("found", "expected"), [
    (announced(service="Box A._ollama._tcp.local.", service_type="_ollama._tcp.local.",
               port=11434), ("mdns-box-a", "http://192.168.1.20:11434", "ollama")),
    (announced(type="vllm", api_path="/v1", version="0.11"),
     ("mdns-gpu-1", "http://192.168.1.20:8000", "vllm")),
    (announced(type="llamacpp", api_path="/llama/v1"),
     ("mdns-gpu-1", "http://192.168.1.20:8000/llama", "llamacpp")),
    (announced(addresses=("fe80::1",)), ("mdns-gpu-1", "http://[fe80::1]:8000", "generic")),
])
def test_a_service_becomes_a_backend(found: Announced, expected: tuple[str, str, str]) -> None:
    config = backend_config(found)
    assert config is not None
    assert (config.name, config.url, config.type) == expected


def test_an_announcement_cannot_claim_the_restricted_zone() -> None:
    config = backend_config(announced(type="ollama", zone="restricted", tier="5"))
    assert config is not None
    assert (config.zone, config.tier) == ("open", 1)  # anyone on the LAN can announce


@pytest.mark.parametrize("found", [
    announced(type="anthropic"),          # a cloud API is configured, never announced
    announced(type="ollama", api_path="../../admin"),
    announced(type="ollama", api_path="x?y=@evil"),
    announced(addresses=()),
    announced(port=0),
])
def test_a_service_that_cannot_be_served_is_not(found: Announced) -> None:
    assert backend_config(found) is None


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def discovery(**fields: Any) -> tuple[MdnsDiscovery, FakeClock]:
    config = make_config([], discovery={"enabled": True, "grace_seconds": 60, **fields})
    clock = FakeClock()
    return MdnsDiscovery(Registry([]), config, {}, clock=clock), clock


def test_a_vanished_service_is_unknown_then_removed_after_the_grace() -> None:
    mdns, clock = discovery()
    served = mdns.found(announced(type="vllm"))
    assert served is not None
    assert served.origin == "mdns"
    served.health.adopt(Health.HEALTHY, "checked", None)
    mdns.vanished("gpu-1._llm._tcp.local.", "_llm._tcp.local.")
    assert served.health.state is Health.UNKNOWN
    assert "vanished" in served.health.reason
    clock.now += 59
    assert mdns.expire() == []
    clock.now += 1
    assert mdns.expire() == ["mdns-gpu-1"]
    assert mdns.registry.get("mdns-gpu-1") is None


def test_a_service_that_returns_in_the_grace_stays_and_one_that_moves_follows() -> None:
    mdns, clock = discovery()
    mdns.found(announced())
    mdns.vanished("gpu-1._llm._tcp.local.", "_llm._tcp.local.")
    moved = mdns.found(announced(port=9000))  # back, on another port
    clock.now += 3600
    assert mdns.expire() == []
    assert moved is not None
    assert mdns.registry.get("mdns-gpu-1") is moved
    assert moved.config.url == "http://192.168.1.20:9000"


def test_an_announcement_never_takes_a_configured_name_nor_floods_the_fleet() -> None:
    mdns, _ = discovery()
    config = make_config([{"name": "mdns-gpu-1", "url": "http://10.0.0.1:8000",
                           "type": "vllm"}])
    mdns.registry.add(Backend(config.backends[0], config.health_check, {}))
    assert mdns.found(announced()) is None
    mdns.vanished("gpu-1._llm._tcp.local.", "_llm._tcp.local.")  # not its to mark
    assert mdns.registry.get("mdns-gpu-1").origin == "config"
    assert mdns.registry.get("mdns-gpu-1").health.state is Health.UNKNOWN  # unchanged
    for n in range(MAX_SERVICES + 10):
        mdns.found(announced(service=f"spam-{n}._llm._tcp.local."))
    assert sum(b.origin == "mdns" for b in mdns.registry) == MAX_SERVICES


# -- a real registration on loopback ---------------------------------------------------------
@pytest.fixture
async def announcer() -> AsyncIterator[AsyncZeroconf]:
    zeroconf = AsyncZeroconf(interfaces=[LOOPBACK], ip_version=IPVersion.V4Only)
    yield zeroconf
    await zeroconf.async_close()


async def test_a_server_announced_on_the_network_is_served_and_leaves(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        announcer: AsyncZeroconf) -> None:
    ollama = await mock_backend("lan", flavor="ollama", models=["qwen3:8b"])
    fixed = await mock_backend("fixed")
    gw = await gateway(make_config([backend(fixed)], discovery={
        "enabled": True, "interfaces": [LOOPBACK], "grace_seconds": 0.5}))
    info = ServiceInfo("_ollama._tcp.local.", "Lab Box._ollama._tcp.local.",
                       addresses=[socket.inet_aton(LOOPBACK)], port=ollama.port,
                       properties={"version": "0.12.0"}, server="lab-box.local.")
    await announcer.async_register_service(info)
    await until(lambda: gw.gateway.registry.get("mdns-lab-box") is not None, within=30)
    found = gw.gateway.registry.get("mdns-lab-box")
    assert (found.origin, found.config.type, found.config.url) == \
        ("mdns", "ollama", ollama.url)
    await until(lambda: "qwen3:8b" in found.models, within=30)  # checked at once
    async with http.post(gw.url + "/v1/chat/completions", json=chat("qwen3:8b")) as r:
        assert r.status == 200
    async with http.delete(gw.url + "/v1/backends/mdns-lab-box") as r:
        assert r.status == 409  # it leaves when its service does
        assert "mDNS" in (await r.json())["error"]["message"]
    await announcer.async_unregister_service(info)
    await until(lambda: gw.gateway.registry.get("mdns-lab-box") is None, within=30)
    assert gw.gateway.registry.get("fixed") is not None


async def test_discovery_is_off_unless_enabled(gateway: GatewayFactory) -> None:
    gw = await gateway(make_config([]))
    assert gw.gateway.mdns is None
    assert "mdns-discovery" not in gw.gateway.supervisor.loops
