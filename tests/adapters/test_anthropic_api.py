"""The Anthropic backend against a mock held to the real API's rules, through the official
`openai` client: nothing the API refuses is sent, nothing asked for vanishes silently."""

from __future__ import annotations

import typing
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest
from anthropic.types import StopReason

from nexus.adapters.anthropic import FINISH_REASONS, to_chat_completion
from tests.support.helpers import GatewayFactory, MockFactory, RunningGateway, backend, make_config
from tests.support.mock_backend import MockBackend

ENV = {"ANTHROPIC_API_KEY": "sk-ant-test"}
CURRENT = "claude-opus-5"             # the current API: no sampling parameters
CLAUDE_4 = "claude-sonnet-4-5-20250929"  # takes them, not temperature with top_p
CLAUDE_3 = "claude-3-5-haiku-20241022"   # takes all three
PRICE = {"input": 3.0, "output": 15.0}   # USD per million; cache 3.75 write, 0.30 read
HI = [{"role": "user", "content": "hi"}]


@dataclass
class Setup:
    client: openai.AsyncOpenAI
    mock: MockBackend
    gw: RunningGateway

    def sent(self) -> dict[str, Any]:
        return self.mock.chat_requests()[-1].body


@pytest.fixture
async def claude(mock_backend: MockFactory, gateway: GatewayFactory) -> AsyncIterator[Setup]:
    mock = await mock_backend("claude", models=[CURRENT, CLAUDE_4, CLAUDE_3])
    config = make_config([{"name": "claude", "url": mock.url, "type": "anthropic",
                           "api_key_env": "ANTHROPIC_API_KEY",
                           "models": [CURRENT, CLAUDE_4, CLAUDE_3],
                           "pricing": {m: dict(PRICE) for m in (CURRENT, CLAUDE_4, CLAUDE_3)}}])
    gw = await gateway(config, ENV)
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    async with client:
        yield Setup(client, mock, gw)
    assert mock.refusals == []  # the mock refused nothing the gateway sent


async def create(setup: Setup, **body: Any) -> Any:
    body.setdefault("messages", HI)
    return await setup.client.chat.completions.with_raw_response.create(**body)


async def test_sampling_parameters_the_current_api_lacks_are_dropped_and_named(
        claude: Setup) -> None:
    raw = await create(claude, model=CURRENT, temperature=0.7, top_p=0.9)
    assert raw.http_response.status_code == 200
    assert raw.headers["X-Nexus-Dropped-Params"] == "temperature, top_p"
    assert "temperature" not in claude.sent()
    assert "top_p" not in claude.sent()


async def test_temperature_with_top_p_keeps_temperature_only_where_the_model_says(
        claude: Setup) -> None:
    raw = await create(claude, model=CLAUDE_4, temperature=0.5, top_p=0.9)
    assert raw.headers["X-Nexus-Dropped-Params"] == "top_p"
    assert claude.sent()["temperature"] == 0.5


async def test_openai_temperatures_above_one_are_clamped_and_said_so(claude: Setup) -> None:
    raw = await create(claude, model=CLAUDE_3, temperature=1.6, top_p=0.9)
    assert raw.headers["X-Nexus-Clamped-Params"] == "temperature=1.6->1"
    assert "X-Nexus-Dropped-Params" not in raw.headers
    assert (claude.sent()["temperature"], claude.sent()["top_p"]) == (1, 0.9)


async def test_an_operator_can_say_what_a_model_takes(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock = await mock_backend("claude", models=["claude-3-7-sonnet-20250219"])
    config = make_config([{"name": "claude", "url": mock.url, "type": "anthropic",
                           "api_key_env": "ANTHROPIC_API_KEY",
                           "models": ["claude-3-7-sonnet-20250219"],
                           "sampling": {"claude-3-7-*": {"accepts": ["top_k"]}}}])
    gw = await gateway(config, ENV)
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model="claude-3-7-sonnet-20250219", messages=HI, temperature=0.2,
            extra_body={"top_k": 5})
    assert raw.headers["X-Nexus-Dropped-Params"] == "temperature"
    assert mock.chat_requests()[-1].body["top_k"] == 5


async def test_whitespace_stop_sequences_are_dropped_and_named(claude: Setup) -> None:
    raw = await create(claude, model=CURRENT, stop=["\n", "END", "  "])
    assert raw.headers["X-Nexus-Dropped-Params"] == "stop (whitespace-only sequences)"
    assert claude.sent()["stop_sequences"] == ["END"]


async def test_empty_turns_are_dropped_and_the_rest_merged(claude: Setup) -> None:
    await create(claude, model=CURRENT, messages=[
        {"role": "user", "content": "first"}, {"role": "assistant", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""},
                                     {"type": "text", "text": "second"}]},
        {"role": "user", "content": ""}])
    assert claude.sent()["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "first"}, {"type": "text", "text": "second"}]}]


async def test_json_schema_becomes_structured_output(claude: Setup) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    await create(claude, model=CURRENT, response_format={
        "type": "json_schema", "json_schema": {"name": "place", "schema": schema}})
    assert claude.sent()["output_config"] == {"format": {"type": "json_schema",
                                                         "schema": schema}}


async def test_json_object_goes_to_a_backend_that_can_honour_it(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    claude = await mock_backend("claude", models=[CURRENT])
    local = await mock_backend("local", models=[CURRENT])
    config = make_config([{"name": "claude", "url": claude.url, "type": "anthropic",
                           "api_key_env": "ANTHROPIC_API_KEY", "models": [CURRENT],
                           "priority": 100}, backend(local, priority=1)])
    gw = await gateway(config, ENV)
    async with openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="x", max_retries=0) as c:
        raw = await c.chat.completions.with_raw_response.create(
            model=CURRENT, messages=HI, response_format={"type": "json_object"})
    assert raw.headers["X-Nexus-Backend"] == "local"
    assert claude.chat_requests() == []


async def test_n_above_one_is_a_400_naming_the_parameter(claude: Setup) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await create(claude, model=CURRENT, n=2)
    assert refused.value.param == "n"
    assert claude.mock.chat_requests() == []


async def test_no_parallel_tool_calls_and_strict_functions_are_mapped(claude: Setup) -> None:
    tool = {"type": "function", "function": {"name": "weather", "strict": True, "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    raw = await create(claude, model=CURRENT, tools=[tool], parallel_tool_calls=False,
                       seed=7, frequency_penalty=0.5, logprobs=True)
    sent = claude.sent()
    assert sent["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert sent["tools"][0]["strict"] is True
    assert raw.headers["X-Nexus-Dropped-Params"] == "frequency_penalty, logprobs, seed"


def test_every_stop_reason_the_sdk_lists_is_mapped() -> None:
    assert set(FINISH_REASONS) == set(typing.get_args(StopReason))
    exceeded = to_chat_completion({"content": [], "stop_reason":
                                   "model_context_window_exceeded", "usage": {}}, "m")
    assert exceeded["choices"][0]["finish_reason"] == "length"


# Cache: 11 fresh input tokens, 2,000 written, 50,000 read, out = the reply's 4 words.
CACHE_COST = -(-(11 * 3000 + 2000 * 3750 + 50_000 * 300 + 4 * 15_000) // 1000)


@pytest.mark.parametrize("stream", [False, True])
async def test_prompt_cache_tokens_are_billed_at_their_own_prices(
        claude: Setup, stream: bool) -> None:
    claude.mock.set(cache_read_tokens=50_000, cache_write_tokens=2000, reply="a b c d")
    if stream:
        chunks = await claude.client.chat.completions.create(
            model=CURRENT, messages=HI, stream=True, stream_options={"include_usage": True})
        usage = [c.usage async for c in chunks if c.usage][-1]
    else:
        usage = (await claude.client.chat.completions.create(model=CURRENT, messages=HI)).usage
    assert usage is not None
    assert usage.prompt_tokens == 11 + 2000 + 50_000
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 50_000
    store = claude.gw.gateway.store
    assert (await store.breakdown(store.budget_view().month)).total_micro_usd == CACHE_COST
    assert claude.gw.gateway.stats.prompt_tokens["claude"] == 52_011


async def test_an_overloaded_anthropic_is_a_503_with_retry_after_not_down(
        claude: Setup) -> None:
    claude.mock.set(status=529, retry_after="12")
    with pytest.raises(openai.APIStatusError) as failed:
        await create(claude, model=CURRENT)
    response = failed.value.response
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "12"
    assert response.json()["error"]["type"] == "overloaded_error"
    state = claude.gw.gateway.registry.get("claude")
    assert state is not None
    assert state.health.state.value != "unhealthy"
    assert claude.gw.gateway.stats.failures["claude", "overloaded"] == 1


async def test_an_upstream_429_passes_on_retry_after(claude: Setup) -> None:
    claude.mock.set(status=429, retry_after="30")
    with pytest.raises(openai.RateLimitError) as limited:
        await create(claude, model=CURRENT)
    assert limited.value.response.headers["Retry-After"] == "30"
    assert limited.value.response.json()["error"]["type"] == "rate_limit_error"
