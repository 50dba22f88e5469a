"""A Responses call's spend is exact, streamed or not, through every kind of backend,
cached input included; a stream whose server sends no usage is billed by what it
streamed, never at $0."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config, until

WORDS = 40
ENV = {"OAI": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
# USD per million tokens: 2 in, 1,000 out, 0.5 for a cached input token
PRICING = {"input": 2.0, "output": 1000.0, "cache_read": 0.5}
# (backend type, how Responses reach it, the model)
ROUTES = [("openai", "native", "gpt-4o"), ("openai", "translate", "gpt-4o"),
          ("anthropic", "translate", "claude-sonnet-4-5")]


def owed(kind: str, cached: int) -> int:
    """micro-USD for the mock's usage: 1,000 prompt tokens (Anthropic's mock: 11 fresh
    plus the cached), WORDS out."""
    fresh = 11 if kind == "anthropic" else 1000 - cached
    nano = fresh * 2_000 + cached * 500 + WORDS * 1_000_000
    return -(-nano // 1000)


async def spent(mock_backend: MockFactory, gateway: GatewayFactory,
                http: aiohttp.ClientSession, kind: str, mode: str, model: str, stream: bool,
                **behaviour: Any) -> tuple[int, dict[str, Any]]:
    mock = await mock_backend("paid", models=[model], chunks=WORDS, responses_api=True,
                              reply=" ".join(f"w{i}" for i in range(WORDS)),
                              usage_prompt_tokens=1000, usage_completion_tokens=WORDS,
                              **behaviour)
    key = "ANTHROPIC_API_KEY" if kind == "anthropic" else "OAI"
    gw = await gateway(make_config([backend(mock, type=kind, models=[model], api_key_env=key,
                                            responses=mode, pricing={model: PRICING})]), ENV)
    async with http.post(gw.url + "/v1/responses", json={
            "model": model, "input": "hi", "stream": stream, "max_output_tokens": 100}) as r:
        assert r.status == 200, await r.text()
        await r.read()
    store = gw.gateway.store
    await until(lambda: store.budget_view().spent_micro_usd > 0)
    return store.budget_view().spent_micro_usd, mock.chat_requests()[-1].body


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(("kind", "mode", "model"), ROUTES)
async def test_spend_is_exact_with_cached_input(
        kind: str, mode: str, model: str, stream: bool, mock_backend: MockFactory,
        gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    billed, _ = await spent(mock_backend, gateway, http, kind, mode, model, stream,
                            cache_read_tokens=400)
    assert billed == owed(kind, 400)


@pytest.mark.parametrize(("mode", "path"), [("native", "responses"),
                                            ("translate", "chat")])
async def test_a_stream_without_usage_is_billed_for_what_it_streamed(
        mode: str, path: str, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    billed, sent = await spent(mock_backend, gateway, http, "openai", mode, "gpt-4o", True,
                               omit_usage=True)
    assert ("messages" in sent) == (path == "chat")
    output_cost = WORDS * 1000  # micro-USD: one token an event, as the stream went
    assert output_cost <= billed <= output_cost * 1.05 + 10, billed
