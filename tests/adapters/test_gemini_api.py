"""The Gemini backend against a mock that validates every request body with Google's
`google-genai` SDK types, through the official `openai` client (chat) and the Messages
and Responses APIs: nothing the API refuses is sent, nothing asked for vanishes
silently, usage and money are exact, and Google's errors reach the client readable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest
from google.genai import types

from nexus.adapters.gemini import FINISH_REASONS
from tests.support.helpers import GatewayFactory, MockFactory, RunningGateway, make_config, until
from tests.support.mock_backend import MockBackend

ENV = {"GEMINI_API_KEY": "gm-test-key-never-in-a-url"}
MODEL = "gemini-2.5-flash"
PRICE = {"input": 0.30, "output": 2.50, "cache_read": 0.03}  # USD per million
HI = [{"role": "user", "content": "hi"}]
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "additionalProperties": False,
                   "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


@dataclass
class Setup:
    client: openai.AsyncOpenAI
    mock: MockBackend
    gw: RunningGateway

    def sent(self) -> dict[str, Any]:
        return self.mock.chat_requests()[-1].body

    def path(self) -> str:
        return self.mock.chat_requests()[-1].path


@pytest.fixture
async def gemini(mock_backend: MockFactory, gateway: GatewayFactory) -> AsyncIterator[Setup]:
    mock = await mock_backend("gemini", models=[MODEL], reply="bonjour from gemini")
    config = make_config([{"name": "gemini", "url": mock.url + "/v1beta", "type": "gemini",
                           "api_key_env": "GEMINI_API_KEY", "pricing": {MODEL: PRICE}}])
    gw = await gateway(config, ENV)
    client = openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)
    async with client:
        yield Setup(client, mock, gw)
    assert mock.refusals == []  # the mock refused nothing the gateway sent


async def test_models_are_discovered_from_the_v1beta_list(gemini: Setup) -> None:
    backend = gemini.gw.gateway.registry.get("gemini")
    assert backend is not None
    assert backend.models == frozenset({MODEL})  # text-embedding-004 generates nothing
    listing = gemini.mock.received[0]
    assert listing.path == "/v1beta/models"
    assert listing.headers["x-goog-api-key"] == ENV["GEMINI_API_KEY"]


async def test_a_chat_becomes_generate_content_with_roles_and_system(gemini: Setup) -> None:
    completion = await gemini.client.chat.completions.create(model=MODEL, messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "hi"},
        {"role": "user", "content": "how are you?"},
        {"role": "user", "content": "and the weather?"}],
        temperature=0.4, top_p=0.9, max_tokens=64, stop=["END"], seed=7)
    assert completion.choices[0].message.content == "bonjour from gemini "
    assert completion.choices[0].finish_reason == "stop"
    request = gemini.mock.chat_requests()[-1]
    assert request.path == f"/v1beta/models/{MODEL}:generateContent"
    assert "key=" not in request.path
    assert request.headers["x-goog-api-key"]
    body = request.body
    assert body["systemInstruction"] == {"parts": [{"text": "be brief"}]}
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert body["contents"][2]["parts"] == [{"text": "how are you?"},
                                            {"text": "and the weather?"}]
    assert body["generationConfig"] == {"temperature": 0.4, "topP": 0.9, "seed": 7,
                                        "maxOutputTokens": 64, "stopSequences": ["END"]}


async def test_a_stream_is_translated_chunk_by_chunk_with_usage(gemini: Setup) -> None:
    stream = await gemini.client.chat.completions.create(
        model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "bonjour from gemini "
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 3
    assert gemini.path() == f"/v1beta/models/{MODEL}:streamGenerateContent"


async def test_images_go_inline_or_by_uri(gemini: Setup) -> None:
    await gemini.client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
        {"type": "text", "text": "what are these?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.webp"}}]}])
    parts = gemini.sent()["contents"][0]["parts"]
    assert parts[1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert parts[2] == {"fileData": {"fileUri": "https://example.com/cat.webp",
                                     "mimeType": "image/webp"}}


@pytest.mark.parametrize("stream", [False, True])
async def test_tools_and_function_calls_round_trip(gemini: Setup, stream: bool) -> None:
    gemini.mock.set(tool_call={"id": "", "name": "get_weather",
                               "arguments": '{"city": "Paris"}'})
    body: dict[str, Any] = {"model": MODEL, "messages": HI, "tools": [WEATHER],
                            "tool_choice": "required"}
    if stream:
        chunks = [c async for c in await gemini.client.chat.completions.create(
            **body, stream=True)]
        calls = [t for c in chunks if c.choices for t in c.choices[0].delta.tool_calls or []]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
        name, arguments, call_id = calls[0].function.name, calls[0].function.arguments, \
            calls[0].id
    else:
        completion = await gemini.client.chat.completions.create(**body)
        (call,) = completion.choices[0].message.tool_calls or []
        name, arguments, call_id = call.function.name, call.function.arguments, call.id
        finish = completion.choices[0].finish_reason
    assert (name, json.loads(arguments or "")) == ("get_weather", {"city": "Paris"})
    assert finish == "tool_calls"
    sent = gemini.sent()
    (declaration,) = sent["tools"][0]["functionDeclarations"]
    assert "additionalProperties" not in declaration["parameters"]  # Gemini refuses it
    assert sent["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}
    gemini.mock.set(tool_call=None)
    await gemini.client.chat.completions.create(model=MODEL, tools=[WEATHER], messages=[
        *HI, {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "18C"}])
    contents = gemini.sent()["contents"]
    assert contents[1] == {"role": "model", "parts": [
        {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}
    assert contents[2] == {"role": "user", "parts": [
        {"functionResponse": {"name": "get_weather", "response": {"content": "18C"}}}]}


async def test_json_mode_and_response_schema(gemini: Setup) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"], "additionalProperties": False}
    await gemini.client.chat.completions.create(model=MODEL, messages=HI, response_format={
        "type": "json_schema", "json_schema": {"name": "out", "schema": schema,
                                               "strict": True}})
    config = gemini.sent()["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseSchema"] == {"type": "object", "required": ["answer"],
                                        "properties": {"answer": {"type": "string"}}}
    await gemini.client.chat.completions.create(model=MODEL, messages=HI,
                                                response_format={"type": "json_object"})
    assert gemini.sent()["generationConfig"] == {"responseMimeType": "application/json"}


async def test_what_gemini_lacks_is_dropped_and_named(gemini: Setup) -> None:
    raw = await gemini.client.chat.completions.with_raw_response.create(
        model=MODEL, messages=HI, logprobs=True, user="u1", parallel_tool_calls=False)
    dropped = raw.headers["X-Nexus-Dropped-Params"].split(", ")
    assert sorted(dropped) == ["logprobs", "parallel_tool_calls", "user"]
    with pytest.raises(openai.BadRequestError) as refused:
        await gemini.client.chat.completions.create(model=MODEL, messages=HI, n=2)
    assert refused.value.body["param"] == "n"  # type: ignore[index]


def test_every_finish_reason_the_sdk_lists_is_mapped() -> None:
    listed = {reason.value for reason in types.FinishReason}
    assert listed <= set(FINISH_REASONS), listed - set(FINISH_REASONS)
    assert FINISH_REASONS["SAFETY"] == "content_filter"
    assert FINISH_REASONS["MAX_TOKENS"] == "length"


@pytest.mark.parametrize("stream", [False, True])
async def test_safety_is_a_content_filter(gemini: Setup, stream: bool) -> None:
    gemini.mock.set(gemini_finish="SAFETY")
    if stream:
        chunks = [c async for c in await gemini.client.chat.completions.create(
            model=MODEL, messages=HI, stream=True)]
        finish = [c.choices[0].finish_reason for c in chunks if c.choices][-1]
    else:
        finish = (await gemini.client.chat.completions.create(
            model=MODEL, messages=HI)).choices[0].finish_reason
    assert finish == "content_filter"


@pytest.mark.parametrize("stream", [False, True])
async def test_usage_with_cached_and_thinking_tokens_is_billed_exactly(
        gemini: Setup, stream: bool) -> None:
    gemini.mock.set(usage_prompt_tokens=1000, usage_completion_tokens=40,
                    cache_read_tokens=600, gemini_thought_tokens=60,
                    gemini_thoughts="let me think")
    if stream:
        chunks = [c async for c in await gemini.client.chat.completions.create(
            model=MODEL, messages=HI, stream=True, stream_options={"include_usage": True})]
        usage = chunks[-1].usage
        thinking = "".join(getattr(c.choices[0].delta, "reasoning_content", None) or ""
                           for c in chunks if c.choices)
    else:
        completion = await gemini.client.chat.completions.create(model=MODEL, messages=HI)
        usage = completion.usage
        thinking = getattr(completion.choices[0].message, "reasoning_content", "")
    assert thinking == "let me think"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (1000, 100)  # thinking is output
    assert usage.prompt_tokens_details is not None
    assert usage.prompt_tokens_details.cached_tokens == 600
    store = gemini.gw.gateway.store
    await until(lambda: store.budget_view().spent_micro_usd > 0)
    # 400 fresh × 300 + 600 cached × 30 + 100 out × 2,500 nano-USD = 388,000 nano
    assert store.budget_view().spent_micro_usd == 388


async def test_a_429_passes_on_its_retry_delay_and_a_400_its_field(gemini: Setup) -> None:
    gemini.mock.set(status=429, retry_after="17")
    with pytest.raises(openai.RateLimitError) as limited:
        await gemini.client.chat.completions.create(model=MODEL, messages=HI)
    assert limited.value.response.headers["Retry-After"] == "17"
    assert limited.value.body["code"] == "resource_exhausted"  # type: ignore[index]
    gemini.mock.set(status=None)
    backend = gemini.gw.gateway.registry.get("gemini")
    assert backend is not None
    assert backend.health.state.value != "unhealthy"  # a rate limit is not an outage


async def test_a_refused_field_reaches_the_client_named(
        gemini: Setup, http: aiohttp.ClientSession) -> None:
    async with http.post(gemini.gw.url + "/v1/chat/completions", json={
            "model": MODEL, "messages": HI, "temperature": "warm"}) as r:
        answer = await r.json()
    assert r.status == 400
    assert answer["error"]["param"] == "generationConfig.temperature"
    gemini.mock.refusals.clear()  # that refusal was the point


async def test_messages_and_responses_clients_reach_gemini(
        gemini: Setup, http: aiohttp.ClientSession) -> None:
    async with http.post(gemini.gw.url + "/v1/messages", json={
            "model": MODEL, "max_tokens": 50, "messages": HI, "stream": True}) as r:
        text = (await r.read()).decode()
    assert "bonjour" in text
    assert "message_stop" in text
    response = await gemini.client.responses.create(model=MODEL, input="hi")
    assert response.output_text == "bonjour from gemini "
    async with gemini.client.responses.stream(model=MODEL, input="hi") as events:
        [e async for e in events]
        final = await events.get_final_response()
    assert final.output_text == "bonjour from gemini "


async def test_the_mock_speaks_what_the_sdk_reads(gemini: Setup,
                                                   http: aiohttp.ClientSession) -> None:
    """The mock's answers parse as google-genai's response type, so the translation is
    tested against Google's shapes, not the mock's own."""
    url = gemini.mock.url + f"/v1beta/models/{MODEL}:generateContent"
    async with http.post(url, json={"contents": [{"role": "user", "parts": [{"text": "x"}]}]},
                         headers={"x-goog-api-key": "k"}) as r:
        parsed = types.GenerateContentResponse.model_validate(await r.json())
    assert parsed.text == "bonjour from gemini "
