"""X-Nexus-* request headers: read strictly; a malformed one is a clear 400."""

from __future__ import annotations

import aiohttp
import pytest

from tests.support.helpers import GatewayFactory, MockFactory, backend, chat, make_config, post


@pytest.mark.parametrize(("header", "value", "message"), [
    ("X-Nexus-Privacy", "open", "X-Nexus-Privacy must be"),
    ("X-Nexus-Privacy", "", "X-Nexus-Privacy must be"),  # present but empty: not a default
    ("X-Nexus-Strict", "maybe", "X-Nexus-Strict must be true or false"),
    ("X-Nexus-Flexible", "2", "X-Nexus-Flexible must be true or false"),
    ("X-Nexus-Priority", "high", "X-Nexus-Priority must be an integer"),
    ("X-Nexus-Priority", "1000", "between -100 and 100"),
])
async def test_malformed_routing_headers_are_400(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        header: str, value: str, message: str) -> None:
    mock = await mock_backend("m", models=["llm"])
    gw = await gateway(make_config([backend(mock)]))
    status, _, answer = await post(http, gw.url, chat("llm"), **{header: value})
    assert status == 400
    assert message in answer["error"]["message"]  # type: ignore[index]
    assert mock.chat_requests() == []


async def test_well_formed_flags_are_accepted(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("m", models=["llm"])
    gw = await gateway(make_config([backend(mock, zone="restricted")]))
    status, _, _ = await post(http, gw.url, chat("llm"), **{
        "X-Nexus-Privacy": "Restricted", "X-Nexus-Strict": "no", "X-Nexus-Flexible": "yes",
        "X-Nexus-Priority": "-5"})
    assert status == 200
