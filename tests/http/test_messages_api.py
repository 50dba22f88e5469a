"""Anthropic's Messages API inbound, through the official `anthropic` SDK: over an
OpenAI-compatible mock (translated both ways) and over an Anthropic mock (passed through)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import msgspec
import pytest

from nexus.config.schema import KeyConfig
from tests.support.helpers import GatewayFactory, MockFactory, RunningGateway, backend, make_config
from tests.support.mock_backend import MockBackend

HI = [{"role": "user", "content": "hi"}]
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
WEATHER = {"name": "get_weather", "description": "Weather of a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}
CALL = {"id": "call_1", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "C"}'}
PRICE = {"input": 1.0, "output": 2.0}  # USD per million tokens


@dataclass
class Setup:
    client: anthropic.AsyncAnthropic
    local: MockBackend
    gw: RunningGateway

    def sent(self) -> dict[str, Any]:
        return self.local.chat_requests()[-1].body


def sdk(gw: RunningGateway, key: str = "unused") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gw.url, api_key=key, max_retries=0)


@pytest.fixture
async def local(mock_backend: MockFactory, gateway: GatewayFactory) -> AsyncIterator[Setup]:
    mock = await mock_backend("local", models=["llm"], usage_prompt_tokens=12,
                              usage_completion_tokens=3)
    gw = await gateway(make_config([backend(mock, models=["llm"])]))
    async with sdk(gw) as client:
        yield Setup(client, mock, gw)


async def test_a_text_message_is_answered_in_anthropic_shape(local: Setup) -> None:
    message = await local.client.messages.create(model="llm", max_tokens=100, messages=HI)
    assert message.role == "assistant"
    assert message.content[0].type == "text"
    assert message.content[0].text == "hello from local "
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (12, 3)
    assert local.sent()["messages"] == HI
    assert local.sent()["max_tokens"] == 100


async def test_a_streamed_text_message_has_anthropics_full_event_sequence(local: Setup) -> None:
    async with local.client.messages.stream(model="llm", max_tokens=100,
                                            messages=HI) as stream:
        kinds = [event.type async for event in stream]
        final = await stream.get_final_message()
    assert kinds[0] == "message_start"
    assert kinds[-2:] == ["message_delta", "message_stop"]
    assert kinds.count("content_block_start") == kinds.count("content_block_stop") == 1
    assert final.content[0].text == "hello from local "  # type: ignore[union-attr]
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (12, 3)
    assert local.sent()["stream_options"] == {"include_usage": True}


async def test_the_stream_starts_with_the_role_and_a_ping(local: Setup,
                                                          http: aiohttp.ClientSession) -> None:
    body = {"model": "llm", "max_tokens": 10, "messages": HI, "stream": True}
    async with http.post(local.gw.url + "/v1/messages", json=body) as response:
        text = (await response.read()).decode()
    events = [e.split("\n") for e in text.split("\n\n") if e.strip()]
    assert [e[0] for e in events[:2]] == ["event: message_start", "event: ping"]
    start = json.loads(events[0][1].removeprefix("data: "))
    assert start["message"]["role"] == "assistant"


async def test_a_system_prompt_string_or_blocks_becomes_the_system_message(
        local: Setup) -> None:
    await local.client.messages.create(model="llm", max_tokens=10, messages=HI,
                                       system="Be brief.")
    assert local.sent()["messages"][0] == {"role": "system", "content": "Be brief."}
    await local.client.messages.create(
        model="llm", max_tokens=10, messages=HI,
        system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}])
    assert local.sent()["messages"][0] == {"role": "system", "content": "Be brief."}


async def test_stop_sequences_and_sampling_are_carried_over(local: Setup) -> None:
    raw = await local.client.messages.with_raw_response.create(
        model="llm", max_tokens=10, messages=HI, stop_sequences=["END"],
        metadata={"user_id": "u-1"},  # the SDK's current API lacks sampling; older ones:
        extra_body={"temperature": 0.3, "top_p": 0.9, "top_k": 5})
    sent = local.sent()
    assert (sent["stop"], sent["temperature"], sent["top_p"]) == (["END"], 0.3, 0.9)
    assert (sent["top_k"], sent["user"]) == (5, "u-1")  # a local server takes top_k
    assert "X-Nexus-Dropped-Params" not in raw.headers


async def test_an_image_goes_only_to_a_backend_that_sees(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    blind = await mock_backend("blind", models=["llm"])
    seeing = await mock_backend("seeing", models=["llm"])
    gw = await gateway(make_config([
        backend(blind, models=["llm"], priority=100, capabilities={"vision": False}),
        backend(seeing, models=["llm"])]))
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": PNG}}
    async with sdk(gw) as client:
        for _ in range(3):
            raw = await client.messages.with_raw_response.create(
                model="llm", max_tokens=10, messages=[{"role": "user", "content": [
                    {"type": "text", "text": "what is this?"}, image]}])
            assert raw.headers["X-Nexus-Backend"] == "seeing"
        text = await client.messages.with_raw_response.create(model="llm", max_tokens=10,
                                                              messages=HI)
    assert text.headers["X-Nexus-Backend"] == "blind"  # text alone takes the first choice
    assert blind.chat_requests()[-1].body["messages"] == HI
    parts = seeing.chat_requests()[-1].body["messages"][0]["content"]
    assert parts == [{"type": "text", "text": "what is this?"},
                     {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]


async def test_a_tool_use_round_trip_streamed(local: Setup) -> None:
    local.local.set(tool_call=CALL, tool_fragments=4)
    partial: list[str] = []
    async with local.client.messages.stream(
            model="llm", max_tokens=100, tools=[WEATHER],
            tool_choice={"type": "any"},
            messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                partial.append(event.delta.partial_json)
        first = await stream.get_final_message()
    assert len(partial) == 4  # each fragment passed on as it arrived
    assert "".join(partial) == CALL["arguments"]
    assert first.stop_reason == "tool_use"
    use = first.content[0]
    assert use.type == "tool_use"
    assert (use.id, use.name, use.input) == ("call_1", "get_weather", json.loads(CALL["arguments"]))
    sent = local.sent()
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Weather of a city",
        "parameters": WEATHER["input_schema"]}}]
    assert sent["tool_choice"] == "required"

    local.local.set(tool_call=None, reply="It is sunny")
    async with local.client.messages.stream(
            model="llm", max_tokens=100, tools=[WEATHER], messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [b.model_dump() for b in first.content]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1",
                                              "content": "18 C, sunny"}]}]) as stream:
        answer = await stream.get_final_message()
    assert answer.content[0].text.strip() == "It is sunny"  # type: ignore[union-attr]
    assert answer.stop_reason == "end_turn"
    turns = local.sent()["messages"]
    assert turns[1]["tool_calls"][0]["id"] == "call_1"
    assert json.loads(turns[1]["tool_calls"][0]["function"]["arguments"]) == \
        json.loads(CALL["arguments"])
    assert turns[2] == {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"}


async def test_a_tool_use_answer_not_streamed(local: Setup) -> None:
    local.local.set(tool_call=CALL)
    message = await local.client.messages.create(model="llm", max_tokens=10, tools=[WEATHER],
                                                 messages=HI)
    assert message.stop_reason == "tool_use"
    assert message.content[0].type == "tool_use"
    assert message.content[0].input == json.loads(CALL["arguments"])


async def test_count_tokens_gives_the_routing_estimate(local: Setup) -> None:
    short = await local.client.messages.count_tokens(model="llm", messages=HI)
    long = await local.client.messages.count_tokens(
        model="llm", system="x" * 400, messages=HI, tools=[WEATHER])  # type: ignore[list-item]
    assert short.input_tokens > 0
    assert long.input_tokens >= short.input_tokens + 100
    assert local.local.chat_requests() == []  # no backend asked, nothing billed


async def test_a_missing_max_tokens_is_an_anthropic_invalid_request(
        local: Setup, http: aiohttp.ClientSession) -> None:
    async with http.post(local.gw.url + "/v1/messages",
                         json={"model": "llm", "messages": HI}) as response:
        assert response.status == 400
        body = await response.json()
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in body["error"]["message"]


async def test_an_unknown_model_is_the_sdks_not_found_error(local: Setup) -> None:
    with pytest.raises(anthropic.NotFoundError) as raised:
        await local.client.messages.create(model="no-such-model", max_tokens=10, messages=HI)
    assert raised.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]


async def test_a_wrong_key_is_the_sdks_authentication_error(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock = await mock_backend("local", models=["llm"])
    config = make_config([backend(mock, models=["llm"])])
    config.keys = [msgspec.convert({"name": "alice", "secret_env": "ALICE"}, KeyConfig)]
    gw = await gateway(config, {"ALICE": "alice-secret"})
    async with sdk(gw, "wrong") as client:
        with pytest.raises(anthropic.AuthenticationError):
            await client.messages.create(model="llm", max_tokens=10, messages=HI)
    async with sdk(gw, "alice-secret") as client:  # the SDK sends it as x-api-key
        assert (await client.messages.create(model="llm", max_tokens=10, messages=HI)).content


async def test_a_key_over_its_rate_limit_is_the_sdks_rate_limit_error(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock = await mock_backend("local", models=["llm"])
    config = make_config([backend(mock, models=["llm"])])
    config.keys = [msgspec.convert({"name": "alice", "secret_env": "ALICE", "rpm": 1},
                                   KeyConfig)]
    gw = await gateway(config, {"ALICE": "alice-secret"})
    async with sdk(gw, "alice-secret") as client:
        await client.messages.create(model="llm", max_tokens=10, messages=HI)
        with pytest.raises(anthropic.RateLimitError) as raised:
            await client.messages.create(model="llm", max_tokens=10, messages=HI)
    assert raised.value.response.headers["Retry-After"]
    assert raised.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


async def test_a_stream_broken_after_the_first_byte_ends_with_an_error_event(
        local: Setup) -> None:
    local.local.set(chunks=4, drop_after_chunks=2)
    seen: list[str] = []

    async def read_all() -> None:
        async with local.client.messages.stream(model="llm", max_tokens=10,
                                                messages=HI) as stream:
            async for event in stream:
                seen.append(event.type)

    with pytest.raises(anthropic.APIStatusError) as raised:
        await read_all()
    assert "content_block_delta" in seen  # it broke after the first byte, not before
    assert "dropped the stream" in str(raised.value)


async def test_no_backend_free_is_the_sdks_overloaded_error(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock = await mock_backend("local", models=["llm"], status=503)
    gw = await gateway(make_config([backend(mock, models=["llm"])]))
    async with sdk(gw) as client:
        with pytest.raises(anthropic.OverloadedError):
            await client.messages.create(model="llm", max_tokens=10, messages=HI)


async def test_a_restricted_messages_request_never_reaches_an_open_zone(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    private = await mock_backend("private", models=["llm"], status=500)
    public = await mock_backend("public", models=["llm", "big"])
    gw = await gateway(make_config(
        [backend(private, models=["llm"], zone="restricted"),
         backend(public, models=["llm", "big"], zone="open")],
        routing={"fallbacks": {"llm": ["big"]}}))
    restricted = {"X-Nexus-Privacy": "restricted"}

    async def streamed(client: anthropic.AsyncAnthropic) -> None:
        async with client.messages.stream(model="llm", max_tokens=10, messages=HI,
                                          extra_headers=restricted) as events:
            await events.get_final_message()

    async with sdk(gw) as client:
        with pytest.raises(anthropic.APIStatusError):
            await client.messages.create(model="llm", max_tokens=10, messages=HI,
                                         extra_headers=restricted)
        with pytest.raises(anthropic.APIStatusError):
            await streamed(client)
        assert len(private.chat_requests()) == 2
        assert public.chat_requests() == []  # neither the same model nor its fallback
        raw = await client.messages.with_raw_response.create(model="llm", max_tokens=10,
                                                             messages=HI)
    assert raw.headers["X-Nexus-Backend"] == "public"  # open traffic may go there


async def test_a_paid_messages_stream_is_billed_for_what_it_used(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    paid = await mock_backend("paid", models=["gpt-x"], usage_prompt_tokens=1000,
                              usage_completion_tokens=500)
    gw = await gateway(make_config([backend(paid, models=["gpt-x"], type="openai",
                                            api_key_env="OAI",
                                            pricing={"gpt-x": dict(PRICE)})]),
                       {"OAI": "sk-test"})
    async with sdk(gw) as client:
        async with client.messages.stream(model="gpt-x", max_tokens=10,
                                          messages=HI) as stream:
            final = await stream.get_final_message()
        raw = await client.messages.with_raw_response.create(model="gpt-x", max_tokens=10,
                                                             messages=HI,
                                                             extra_body={"top_k": 3})
    assert (final.usage.input_tokens, final.usage.output_tokens) == (1000, 500)
    spend = await gw.gateway.store.breakdown(gw.gateway.store.budget_view().month)
    assert spend.total_micro_usd == 2 * (1000 + 1000)  # 1000 in at $1/M, 500 out at $2/M
    assert raw.headers["X-Nexus-Dropped-Params"] == "top_k"  # OpenAI's API has none
    assert "top_k" not in paid.chat_requests()[-1].body


async def test_an_anthropic_backend_gets_the_body_unchanged_but_the_model(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    claude = await mock_backend("claude", models=["claude-opus-5"], usage_prompt_tokens=7)
    gw = await gateway(make_config(
        [{"name": "claude", "url": claude.url, "type": "anthropic",
          "api_key_env": "ANTHROPIC_API_KEY", "models": ["claude-opus-5"],
          "pricing": {"claude-opus-5": dict(PRICE)}}],
        routing={"aliases": {"claude": "claude-opus-5"}}), {"ANTHROPIC_API_KEY": "sk-ant"})
    body: dict[str, Any] = {
        "model": "claude", "max_tokens": 50, "system": [
            {"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
        "thinking": {"type": "enabled", "budget_tokens": 1024}}
    async with sdk(gw) as client:
        message = await client.messages.create(**body)
        async with client.messages.stream(**body) as stream:
            streamed = await stream.get_final_message()
    first, second = claude.chat_requests()[-2:]
    assert first.body == {**body, "model": "claude-opus-5"}
    assert second.body == {**body, "model": "claude-opus-5", "stream": True}
    assert first.headers["anthropic-version"] == "2023-06-01"
    assert first.headers["x-api-key"] == "sk-ant"  # the backend's key, not the client's
    assert message.content[0].text == streamed.content[0].text  # type: ignore[union-attr]
    assert streamed.stop_reason == "end_turn"
    spend = await gw.gateway.store.breakdown(gw.gateway.store.budget_view().month)
    assert spend.total_micro_usd > 0
    assert claude.refusals == []


async def test_a_document_block_goes_to_a_backend_that_can_read_it(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    local = await mock_backend("local", models=["m"])
    claude = await mock_backend("claude", models=["m"])
    gw = await gateway(make_config(
        [backend(local, models=["m"], priority=100),
         {"name": "claude", "url": claude.url, "type": "anthropic",
          "api_key_env": "ANTHROPIC_API_KEY", "models": ["m"]}]),
        {"ANTHROPIC_API_KEY": "sk-ant"})
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                               "data": "notes"}}
    async with sdk(gw) as client:
        raw = await client.messages.with_raw_response.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": [document]}])
    assert raw.headers["X-Nexus-Backend"] == "claude"
    assert local.chat_requests() == []  # refused before sending: nothing to translate to


async def test_explain_takes_a_messages_body(local: Setup, http: aiohttp.ClientSession) -> None:
    body = {"model": "llm", "max_tokens": 10, "messages": HI}
    async with http.post(local.gw.url + "/v1/routing/explain?format=messages",
                         json=body) as response:
        assert response.status == 200
        explained = await response.json()
    assert explained["decision"]["backend"] == "local"
