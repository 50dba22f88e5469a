"""Anthropic Messages API behind the OpenAI surface, both ways, streaming included."""

from __future__ import annotations

import json

import aiohttp

from nexus.adapters.anthropic import AnthropicStream, to_chat_completion
from nexus.adapters.chat_to_anthropic import to_messages_request
from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config

ENV = {"ANTHROPIC_API_KEY": "sk-ant-test"}


def claude_config(url: str) -> dict[str, object]:
    return {"name": "claude", "url": url, "type": "anthropic", "api_key_env": "ANTHROPIC_API_KEY",
            "models": ["claude-sonnet"]}


def test_request_translation_covers_system_images_tools_and_tool_results() -> None:
    payload = {
        "model": "claude-sonnet", "max_tokens": 50, "temperature": 0.1, "stop": "END",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_1", "type": "function",
                 "function": {"name": "weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {
            "type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
    }
    request = to_messages_request(payload, stream=True)
    assert request["system"] == "be brief"
    assert request["stream"] is True
    assert request["stop_sequences"] == ["END"]
    assert request["tool_choice"] == {"type": "any"}
    assert request["tools"][0]["input_schema"]["properties"]["city"]["type"] == "string"
    user, assistant, tool_result = request["messages"]
    assert user["content"][1]["source"] == {"type": "base64", "media_type": "image/png",
                                             "data": "AAAA"}
    assert assistant["content"][0] == {"type": "tool_use", "id": "call_1", "name": "weather",
                                       "input": {"city": "Paris"}}
    assert tool_result == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "call_1", "content": "sunny"}]}


def test_max_tokens_defaults_because_anthropic_requires_it() -> None:
    request = to_messages_request({"model": "c", "messages": [{"role": "user", "content": "x"}]},
                                  stream=False)
    assert request["max_tokens"] > 0


def test_response_translation_maps_tool_use_and_usage() -> None:
    message = {"id": "msg_1", "content": [
        {"type": "text", "text": "checking"},
        {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Paris"}}],
        "stop_reason": "tool_use", "usage": {"input_tokens": 7, "output_tokens": 3}}
    completion = to_chat_completion(message, "claude-sonnet")
    choice = completion["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "checking"
    call = choice["message"]["tool_calls"][0]
    assert (call["id"], json.loads(call["function"]["arguments"])) == ("toolu_1",
                                                                      {"city": "Paris"})
    assert completion["usage"] == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10,
                                   "prompt_tokens_details": {"cached_tokens": 0}}


def test_stream_translation_of_tool_call_deltas() -> None:
    stream = AnthropicStream("claude", include_usage=True)
    events = [
        {"type": "message_start", "message": {"id": "m", "usage": {"input_tokens": 5}}},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_9", "name": "weather"}},
        {"type": "content_block_delta", "index": 1,
         "delta": {"type": "input_json_delta", "partial_json": '{"city":'}},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
         "usage": {"output_tokens": 4}},
        {"type": "message_stop"},
    ]
    raw = b"".join(stream.feed(b"data: " + json.dumps(e).encode() + b"\n\n") for e in events)
    out = [e for e in raw.split(b"\n\n") if e]
    chunks = [json.loads(e[6:]) for e in out if not e.startswith(b"data: [DONE]")]
    assert chunks[1]["choices"][0]["delta"]["tool_calls"][0]["id"] == "toolu_9"
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == \
        '{"city":'
    assert chunks[3]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[4]["usage"] == {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9,
                                  "prompt_tokens_details": {"cached_tokens": 0}}
    assert out[-1] == b"data: [DONE]"


async def test_chat_through_anthropic_backend(mock_backend: MockFactory, gateway: GatewayFactory,
                                              http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("claude")
    gw = await gateway(make_config([claude_config(mock.url)]), environ=ENV)
    body = {"model": "claude-sonnet", "messages": [{"role": "system", "content": "s"},
                                                   {"role": "user", "content": "hi"}]}
    async with http.post(gw.url + "/v1/chat/completions", json=body) as r:
        assert r.status == 200
        assert r.headers["X-Nexus-Backend-Type"] == "cloud"
        answer = await r.json()
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"].startswith("hello from claude")
    sent = mock.chat_requests()[0]
    assert sent.path == "/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-test"
    assert sent.body["system"] == "s"


async def test_streaming_through_anthropic_backend(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("claude", reply="one two three", chunks=3)
    gw = await gateway(make_config([claude_config(mock.url)]), environ=ENV)
    body = {"model": "claude-sonnet", "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(gw.url + "/v1/chat/completions", json=body) as r:
        text = (await r.read()).decode()
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e.strip()]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert content == "one two three "
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert gw.gateway.stats.completion_tokens["claude"] == 3


async def test_missing_cloud_key_keeps_the_backend_out_of_rotation(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    local = await mock_backend("local", models=["claude-sonnet"])
    gw = await gateway(make_config([claude_config("http://127.0.0.1:9"), backend(local)]),
                       environ={})
    claude = gw.gateway.registry.get("claude")
    assert claude is not None
    assert "ANTHROPIC_API_KEY" in claude.health.reason
    body = {"model": "claude-sonnet", "messages": [{"role": "user", "content": "hi"}]}
    async with http.post(gw.url + "/v1/chat/completions", json=body) as r:
        assert r.headers["X-Nexus-Backend"] == "local"
