"""Answers and logs that tell an operator what happened and what to do next."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from nexus.config.schema import Config
from tests.support.helpers import GatewayFactory, chat, make_config, post
from tests.support.redis_server import free_port


async def test_no_ollama_running_says_where_it_was_looked_for_and_what_to_do(
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    port = free_port()  # nothing listens there
    config = make_config([{"name": "ollama-local", "url": f"http://127.0.0.1:{port}",
                           "type": "ollama", "zone": "restricted"}])
    gw = await gateway(config)
    status, headers, answer = await post(http, gw.url, chat("llama3"))
    assert status == 503
    error = answer["error"]
    assert f"http://127.0.0.1:{port}" in error["message"]  # type: ignore[index]
    assert "connection refused" in error["message"]  # type: ignore[index]
    assert error["suggestion"].startswith(f"start Ollama at http://127.0.0.1:{port}")  # type: ignore[index]
    assert "nexus config init" in error["suggestion"]  # type: ignore[index]
    (group,) = error["rejection_reasons"]  # type: ignore[index]
    assert group["reasons"][0]["backend"] == "ollama-local"
    assert headers["Retry-After"]  # it may well come up: waiting helps


async def test_a_cloud_backend_without_its_key_names_the_variable_to_set(
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    config = make_config([{"name": "oai", "url": "http://127.0.0.1:9", "type": "openai",
                           "api_key_env": "OPENAI_API_KEY", "models": ["gpt-4o"]}])
    gw = await gateway(config, {})
    status, _, answer = await post(http, gw.url, chat("gpt-4o"))
    assert status == 503
    suggestion = answer["error"]["suggestion"]  # type: ignore[index]
    assert suggestion.startswith("set OPENAI_API_KEY")
    assert "running" not in suggestion


async def test_a_passive_health_change_is_logged_with_its_cause_in_words(
        gateway: GatewayFactory, http: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    config: Config = make_config([{"name": "gone", "url": f"http://127.0.0.1:{free_port()}",
                                   "models": ["m"]}], health_check={"enabled": False})
    gw = await gateway(config)
    with caplog.at_level(logging.INFO):
        await post(http, gw.url, chat("m"))
    assert "backend gone: unknown -> unhealthy (connection refused)" in caplog.text
    assert "ClientConnectorError" not in caplog.text
