"""POST /v1/responses, driven by the official openai SDK: translated to chat for a
chat-only backend, passed through to a server that speaks Responses, streamed and
not, chained by previous_response_id across replicas, stored per tenant, and billed
exactly. Each place other gateways broke has its test here."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    make_config,
    until,
)
from tests.support.redis_server import RedisServer

STREAM_EVENT: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ResponseStreamEvent)
TOOL = {"id": "call_7", "name": "get_weather", "arguments": '{"city": "Paris", "unit": "c"}'}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                                                           "unit": {"type": "string"}}}}


Client = Callable[..., openai.AsyncOpenAI]


@pytest.fixture
async def client() -> AsyncIterator[Client]:
    """openai SDK clients of a gateway, closed after the test."""
    made: list[openai.AsyncOpenAI] = []

    def make(gw: RunningGateway, key: str = "unused") -> openai.AsyncOpenAI:
        made.append(openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key=key, max_retries=0))
        return made[-1]

    yield make
    for sdk in made:
        await sdk.close()


async def one_gateway(mock_backend: MockFactory, gateway: GatewayFactory,
                      **mock: Any) -> tuple[Any, RunningGateway]:
    server = await mock_backend("gpu", **mock)
    return server, await gateway(make_config([backend(server)]))


# -- translated to chat --------------------------------------------------------------------
async def test_a_chat_only_backend_answers_a_responses_call(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock, gw = await one_gateway(mock_backend, gateway, reply="the answer is 42")
    response = await client(gw).responses.create(
        model="mock-model", input="what is it?", instructions="be brief",
        max_output_tokens=50, temperature=0.2, metadata={"ticket": "7"})
    assert response.status == "completed"
    assert response.output_text.strip() == "the answer is 42"
    assert response.id.startswith("resp_")
    assert response.usage is not None
    assert response.usage.output_tokens > 0
    assert response.metadata == {"ticket": "7"}
    sent = mock.chat_requests()[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.body["messages"] == [{"role": "system", "content": "be brief"},
                                     {"role": "user", "content": "what is it?"}]
    assert sent.body["max_tokens"] == 50
    assert sent.body["temperature"] == 0.2


async def test_a_translated_stream_has_the_documented_events_in_order(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock, gw = await one_gateway(mock_backend, gateway, reply="one two three", chunks=3)
    async with client(gw).responses.stream(model="mock-model", input="count") as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds.count("response.output_text.delta") == 3
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.output_text.strip() == "one two three"
    assert final.usage is not None
    assert final.usage.input_tokens > 0
    assert mock.chat_requests()[-1].body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_calls_keep_their_arguments_and_come_back_as_input(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory, stream: bool) -> None:
    mock, gw = await one_gateway(mock_backend, gateway, tool_call=TOOL, tool_fragments=4)
    sdk = client(gw)
    if stream:
        async with sdk.responses.stream(model="mock-model", input="weather?",
                                        tools=[WEATHER]) as events:
            seen = [e async for e in events]
            response = await events.get_final_response()
        kinds = [e.type for e in seen]
        assert kinds.count("response.function_call_arguments.delta") == 4
        done = next(e for e in seen if e.type == "response.function_call_arguments.done")
        assert done.arguments == TOOL["arguments"]
        assert kinds.index("response.function_call_arguments.done") < \
            kinds.index("response.output_item.done") < kinds.index("response.completed")
    else:
        response = await sdk.responses.create(model="mock-model", input="weather?",
                                              tools=[WEATHER], tool_choice="auto")
    (call,) = response.output
    assert call.type == "function_call"
    assert (call.call_id, call.name, call.arguments) == (TOOL["id"], TOOL["name"],
                                                         TOOL["arguments"])
    sent = mock.chat_requests()[-1].body
    assert sent["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather",
        "parameters": WEATHER["parameters"]}}]
    mock.set(tool_call=None, reply="sunny")
    answer = await sdk.responses.create(model="mock-model", input=[
        {"role": "user", "content": "weather?"},
        {"type": "function_call", "call_id": "call_7", "name": "get_weather",
         "arguments": TOOL["arguments"]},
        {"type": "function_call_output", "call_id": "call_7", "output": "18C, sunny"}])
    assert answer.output_text.strip() == "sunny"
    messages = mock.chat_requests()[-1].body["messages"]
    assert messages[1] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_7", "type": "function",
         "function": {"name": "get_weather", "arguments": TOOL["arguments"]}}]}
    assert messages[2] == {"role": "tool", "tool_call_id": "call_7", "content": "18C, sunny"}


async def test_what_chat_cannot_carry_is_named_never_lost_silently(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mock, gw = await one_gateway(mock_backend, gateway)
    body = {"model": "mock-model", "include": ["reasoning.encrypted_content"],
            "truncation": "auto", "reasoning": {"effort": "low", "summary": "auto"},
            "text": {"format": {"type": "json_schema", "name": "out",
                                "schema": {"type": "object"}, "strict": True}},
            "tools": [WEATHER, {"type": "web_search"}],
            "input": [{"type": "reasoning", "id": "rs_1", "summary": [],
                       "encrypted_content": "opaque"},
                      {"role": "developer", "content": "terse"},
                      {"role": "user", "content": [
                          {"type": "input_text", "text": "what is this?"},
                          {"type": "input_image", "image_url": "data:image/png;base64,AAAA"},
                          {"type": "input_file", "file_id": "file-1"}]}]}
    async with http.post(gw.url + "/v1/responses", json=body) as r:
        assert r.status == 200, await r.text()
        dropped = r.headers["X-Nexus-Dropped-Params"]
    for name in ("input[reasoning]", "input[input_file]", "tools[web_search]", "include",
                 "truncation", "reasoning.summary"):
        assert name in dropped
    sent = mock.chat_requests()[-1].body
    assert sent["reasoning_effort"] == "low"
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "out", "schema": {"type": "object"}, "strict": True}}
    assert sent["messages"][0] == {"role": "system", "content": "terse"}
    assert sent["messages"][1]["content"][1] == {
        "type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


# -- passed through ------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
async def test_a_server_that_speaks_responses_gets_them_as_they_are(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory, stream: bool) -> None:
    mock = await mock_backend("vllm", responses_api=True, reply="native words")
    gw = await gateway(make_config([backend(mock, type="vllm", responses="native")]))
    sdk = client(gw)
    if stream:
        async with sdk.responses.stream(model="mock-model", input="hi") as events:
            [e async for e in events]
            response = await events.get_final_response()
    else:
        response = await sdk.responses.create(model="mock-model", input="hi")
    assert response.output_text.strip() == "native words"
    sent = mock.chat_requests()[-1]
    assert sent.path == "/v1/responses"
    assert sent.body["store"] is False
    assert "previous_response_id" not in sent.body
    assert sent.body["input"] == [{"type": "message", "role": "user", "content": "hi"}]


async def test_a_completed_event_without_output_gets_the_finished_items(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("vllm", responses_api=True, responses_bare_completed=True,
                              responses_args_done_only=True, tool_call=TOOL)
    gw = await gateway(make_config([backend(mock, type="vllm", responses="native")]))
    async with http.post(gw.url + "/v1/responses", json={
            "model": "mock-model", "input": "weather?", "stream": True}) as r:
        text = (await r.read()).decode()
    events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
    completed = events[-1]
    assert completed["type"] == "response.completed"
    (call,) = completed["response"]["output"]
    assert call["arguments"] == TOOL["arguments"]  # only ever sent in `.done`
    stored = await http.get(gw.url + f"/v1/responses/{completed['response']['id']}")
    assert (await stored.json())["output"][0]["arguments"] == TOOL["arguments"]


async def test_auto_asks_the_server_once_and_then_passes_through(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    speaks = await mock_backend("speaks", responses_api=True)
    silent = await mock_backend("silent")  # llama-cpp-python: no /v1/responses
    gw = await gateway(make_config([backend(speaks, type="llamacpp", priority=90),
                                    backend(silent, type="llamacpp", priority=10)]))
    support = gw.gateway.responses_support
    sdk = client(gw)
    await sdk.responses.create(model="mock-model", input="first")  # asks, translates
    sent = [r for r in speaks.chat_requests() if r.body]  # not the probe's empty body
    assert sent[-1].path == "/v1/chat/completions"
    await until(lambda: "speaks" in support.known)
    assert support.known["speaks"] is True
    await sdk.responses.create(model="mock-model", input="second")
    assert [r for r in speaks.chat_requests() if r.body][-1].path == "/v1/responses"
    assert support.native(gw.gateway.registry.get("silent")) is False
    await until(lambda: "silent" in support.known)
    assert support.known["silent"] is False


# -- state ---------------------------------------------------------------------------------
async def test_previous_response_id_chains_across_two_replicas_sharing_redis(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory,
        redis_server: RedisServer, redis_prefix: str) -> None:
    mock = await mock_backend("gpu", reply="first answer")
    native = await mock_backend("native", responses_api=True, reply="second answer")
    redis = {"url": redis_server.url, "prefix": redis_prefix}
    one = await gateway(make_config([backend(mock, priority=90)], redis=redis))
    two = await gateway(make_config([backend(native, type="vllm", responses="native")],
                                    redis=redis))
    first = await client(one).responses.create(model="mock-model", input="question one",
                                               instructions="system words")
    second = await client(two).responses.create(model="mock-model", input="question two",
                                                previous_response_id=first.id)
    assert second.output_text.strip() == "second answer"
    sent = native.chat_requests()[-1].body["input"]
    assert [item.get("role") for item in sent] == ["user", "assistant", "user"]
    assert sent[1]["content"][0]["text"].strip() == "first answer"
    assert "system words" not in json.dumps(sent)  # instructions do not carry over
    third = await client(one).responses.create(model="mock-model", input="question three",
                                               previous_response_id=second.id)
    messages = mock.chat_requests()[-1].body["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    fetched = await client(two).responses.retrieve(third.id)
    assert fetched.output_text == third.output_text


async def test_stored_responses_belong_to_the_key_that_made_them(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    keys = [{"name": "alice", "secret_env": "ALICE"}, {"name": "bob", "secret_env": "BOB"}]
    gw = await gateway(make_config([backend(mock)], keys=keys),
                       {"ALICE": "sk-alice-000000000000", "BOB": "sk-bob-0000000000000"})
    alice, bob = client(gw, "sk-alice-000000000000"), client(gw, "sk-bob-0000000000000")
    made = await alice.responses.create(model="mock-model", input="secret plans")
    assert (await alice.responses.retrieve(made.id)).id == made.id
    items = await alice.responses.input_items.list(made.id)
    assert [item.type for item in items.data] == ["message"]
    for attempt in (bob.responses.retrieve(made.id), bob.responses.delete(made.id),
                    bob.responses.input_items.list(made.id)):
        with pytest.raises(openai.NotFoundError):  # not "forbidden": it is not there
            await attempt
    with pytest.raises(openai.BadRequestError):  # nor can bob continue alice's turn
        await bob.responses.create(model="mock-model", input="and?",
                                   previous_response_id=made.id)
    async with http.get(gw.url + f"/v1/responses/{made.id}") as r:
        assert r.status == 401  # no key at all
    await alice.responses.delete(made.id)
    with pytest.raises(openai.NotFoundError):
        await alice.responses.retrieve(made.id)


async def test_store_false_keeps_nothing(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    _mock, gw = await one_gateway(mock_backend, gateway)
    sdk = client(gw)
    response = await sdk.responses.create(model="mock-model", input="hi", store=False)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(response.id)
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model="mock-model", input="again",
                                   previous_response_id=response.id)
    assert refused.value.body["param"] == "previous_response_id"  # type: ignore[index]


async def test_errors_come_in_the_openai_shape(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    _mock, gw = await one_gateway(mock_backend, gateway)
    for body, status, param in [
            ({"model": "mock-model"}, 400, "input"),
            ({"model": "mock-model", "input": "x", "max_output_tokens": "many"}, 400,
             "max_output_tokens"),
            ({"model": "no-such-model", "input": "x"}, 404, None),
            ({"model": "mock-model", "input": "x", "previous_response_id": "resp_forged"},
             400, "previous_response_id")]:
        async with http.post(gw.url + "/v1/responses", json=body) as r:
            error = (await r.json())["error"]
            assert r.status == status, (body, error)
            assert set(error) >= {"message", "type", "code", "param"}
            if param is not None:
                assert error["param"] == param


async def test_a_wiped_or_lost_redis_fails_closed(
        client: Client, own_redis: RedisServer, redis_prefix: str,
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)], redis={
        "url": own_redis.url, "prefix": redis_prefix, "timeout_seconds": 2}))
    sdk = client(gw)
    first = await sdk.responses.create(model="mock-model", input="remember me")
    own_redis.client().flushall()
    with pytest.raises(openai.BadRequestError):  # gone: said so, never answered blind
        await sdk.responses.create(model="mock-model", input="and?",
                                   previous_response_id=first.id)
    again = await sdk.responses.create(model="mock-model", input="remember me")
    own_redis.kill()
    with pytest.raises(openai.InternalServerError) as lost:
        await sdk.responses.create(model="mock-model", input="and?",
                                   previous_response_id=again.id)
    assert lost.value.status_code == 503
    assert lost.value.body["code"] == "store_unavailable"  # type: ignore[index]
    alone = await sdk.responses.create(model="mock-model", input="no state needed",
                                       store=False)
    assert alone.status == "completed"  # a turn that needs no state is still served
    stored = await sdk.responses.create(model="mock-model", input="keep me")
    assert stored.status == "completed"  # answered; keeping it failed and was logged


async def test_every_turn_of_a_chain_goes_where_the_first_went(
        client: Client, mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mocks = [await mock_backend(f"gpu{i}") for i in range(3)]
    gw = await gateway(make_config([backend(m, type="vllm", engine="off") for m in mocks]))
    sdk = client(gw)
    for chain in range(6):
        first = await sdk.responses.with_raw_response.create(
            model="mock-model", input=f"conversation {chain}")
        home = first.headers["X-Nexus-Backend"]
        previous = first.parse().id
        for turn in range(3):
            raw = await sdk.responses.with_raw_response.create(
                model="mock-model", input=f"turn {turn}", previous_response_id=previous)
            assert raw.headers["X-Nexus-Backend"] == home
            assert raw.headers["X-Nexus-Route-Reason"].startswith("affinity")
            previous = raw.parse().id


async def test_explain_reads_a_responses_body(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    text = await mock_backend("text")
    seeing = await mock_backend("seeing")
    gw = await gateway(make_config([backend(text, capabilities={"vision": False}),
                                    backend(seeing, capabilities={"vision": True})]))
    body = {"model": "mock-model", "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]}
    async with http.post(gw.url + "/v1/routing/explain?format=responses", json=body) as r:
        decision = await r.json()
    assert r.status == 200, decision
    assert decision["decision"]["backend"] == "seeing"
    assert not seeing.chat_requests()
    assert not text.chat_requests()


@pytest.mark.parametrize("kind", ["generic", "anthropic"])
async def test_translated_answers_are_valid_sdk_responses(
        kind: str, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", models=["claude-sonnet-4-5"], reply="strict shapes")
    extra = {"api_key_env": "ANTHROPIC_API_KEY"} if kind == "anthropic" else {}
    gw = await gateway(make_config([backend(mock, type=kind, models=["claude-sonnet-4-5"],
                                            **extra)]), {"ANTHROPIC_API_KEY": "sk-ant-test"})
    body = {"model": "claude-sonnet-4-5", "input": "hi", "max_output_tokens": 64}
    async with http.post(gw.url + "/v1/responses", json=body) as r:
        whole = Response.model_validate(await r.json())  # pydantic: strict about shapes
    assert whole.output_text.strip() == "strict shapes"
    async with http.post(gw.url + "/v1/responses", json={**body, "stream": True}) as r:
        text = await r.read()
    events = [STREAM_EVENT.validate_python(json.loads(line[6:]))
              for line in text.decode().splitlines() if line.startswith("data: ")]
    assert events[-1].type == "response.completed"
    assert events[-1].response.output_text.strip() == "strict shapes"
