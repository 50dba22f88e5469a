"""A stream is billed for what the upstream sent, on both inbound APIs and both kinds of
backend: cut short by the backend, or whole but without usage (llama-cpp-python's
habit). Billed over owed stays within 0.95-1.05."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import pytest

from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config, until

WORDS = 40
PER_TOKEN = 1000  # micro-USD: 1,000 USD per million output tokens, nothing for input
ENV = {"OAI": "sk-test", "ANTHROPIC_API_KEY": "sk-ant-test"}
MODEL = "claude-sonnet-4-5"


def reply() -> str:
    return " ".join(f"w{i}" for i in range(WORDS))


async def billed_for(mock_backend: MockFactory, gateway: GatewayFactory,
                     http: aiohttp.ClientSession, kind: str, inbound: str,
                     **behaviour: Any) -> int:
    mock = await mock_backend("paid", models=[MODEL], reply=reply(), chunks=WORDS,
                              **behaviour)
    key = {"api_key_env": "ANTHROPIC_API_KEY"} if kind == "anthropic" else {"api_key_env": "OAI"}
    config = make_config([backend(mock, type=kind, models=[MODEL], **key,
                                  pricing={MODEL: {"input": 0.0, "output": 1000.0}})])
    gw = await gateway(config, ENV)
    messages = [{"role": "user", "content": "hi"}]
    if inbound == "chat":
        path, body = "/v1/chat/completions", {"model": MODEL, "messages": messages,
                                              "stream": True}
    else:
        path, body = "/v1/messages", {"model": MODEL, "messages": messages, "stream": True,
                                      "max_tokens": 100}
    async with http.post(gw.url + path, json=body) as response:
        assert response.status == 200
        await response.read()
    store = gw.gateway.store
    await until(lambda: store.budget_view().spent_micro_usd > 0)
    return store.budget_view().spent_micro_usd


PATHS = [(kind, inbound) for kind in ("openai", "anthropic") for inbound in ("chat", "messages")]


@pytest.mark.parametrize(("kind", "inbound"), PATHS)
async def test_a_stream_the_backend_cuts_short_is_billed_for_what_it_sent(
        kind: str, inbound: str, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    sent = 25
    billed = await billed_for(mock_backend, gateway, http, kind, inbound,
                              drop_after_chunks=sent)
    owed = sent * PER_TOKEN
    assert 0.95 <= billed / owed <= 1.05, (billed, owed)


@pytest.mark.parametrize("inbound", ["chat", "messages"])
async def test_a_whole_stream_without_usage_is_billed_for_its_content_only(
        inbound: str, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    """The role chunk, the finish chunk and [DONE] are no tokens."""
    billed = await billed_for(mock_backend, gateway, http, "openai", inbound, omit_usage=True)
    assert billed == WORDS * PER_TOKEN


@pytest.mark.parametrize(("kind", "inbound"), PATHS)
async def test_a_whole_stream_is_billed_by_its_reported_usage(
        kind: str, inbound: str, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    billed = await billed_for(mock_backend, gateway, http, kind, inbound)
    assert billed == WORDS * PER_TOKEN


def test_token_carrying_events_are_counted_not_role_finish_or_usage() -> None:
    from nexus.adapters.openai import OpenAIStream
    stream = OpenAIStream(include_usage=False)
    events = [{"choices": [{"delta": {"role": "assistant", "content": ""}}]},
              {"choices": [{"delta": {"content": "Hel"}}]},
              {"choices": [{"delta": {"content": "\"lo"}}]},
              {"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{\""}}]}}]},
              {"choices": [{"delta": {}, "finish_reason": "stop"}]},
              {"choices": [], "usage": None}]
    stream.feed(b"".join(f"data: {json.dumps(e)}\n\n".encode() for e in events)
                + b"data: [DONE]\n\n")
    assert stream.events == 3
