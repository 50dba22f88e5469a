"""Anthropic Messages API ↔ OpenAI chat completions, both ways, streaming included."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from nexus.adapters.anthropic_params import Adjustments
from nexus.adapters.anthropic_request import to_messages_request
from nexus.adapters.base import UpstreamRequest, Usage
from nexus.adapters.sse import DONE, EventSplitter, data_of, frame
from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers
from nexus.pipeline.types import Endpoint

Json = dict[str, Any]
# Every stop reason of the SDK's StopReason literal (a test checks the table is complete).
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "pause_turn": "stop", "refusal": "content_filter",
                  "model_context_window_exceeded": "length"}


def to_chat_completion(message: Json, model: str) -> Json:
    text = "".join(b.get("text", "") for b in message.get("content", []) if b["type"] == "text")
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": msgspec.json.encode(
                  b.get("input", {})).decode()}}
             for b in message.get("content", []) if b["type"] == "tool_use"]
    reply: Json = {"role": "assistant", "content": text or None}
    if calls:
        reply["tool_calls"] = calls
    usage = _usage(message.get("usage") or {})
    return {"id": f"chatcmpl-{message.get('id', '')}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": reply, "logprobs": None,
                         "finish_reason": FINISH_REASONS.get(message.get("stop_reason") or "",
                                                             "stop")}],
            "usage": _usage_json(usage)}


def _usage(raw: Json, before: Usage | None = None) -> Usage:
    """Anthropic's usage: `input_tokens` leaves out what the prompt cache wrote and read;
    OpenAI's `prompt_tokens` counts them all. Fields a stream's message_delta does not
    repeat keep what message_start said."""
    base = before or Usage()
    read = _count(raw, "cache_read_input_tokens", base.cache_read_tokens)
    write = _count(raw, "cache_creation_input_tokens", base.cache_write_tokens)
    fresh = _count(raw, "input_tokens",
                   base.prompt_tokens - base.cache_read_tokens - base.cache_write_tokens)
    return Usage(prompt_tokens=fresh + read + write,
                 completion_tokens=_count(raw, "output_tokens", base.completion_tokens),
                 cache_read_tokens=read, cache_write_tokens=write)


def _count(raw: Json, key: str, default: int) -> int:
    value = raw.get(key)
    return int(value) if isinstance(value, int) else default


def _usage_json(usage: Usage) -> Json:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cache_read_tokens}}


class AnthropicStream:
    """Turns message_start / content_block_* / message_delta events into chat chunks."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.events = 0
        self._id = "chatcmpl-"
        self._created = int(time.time())
        self._tool_index: dict[int, int] = {}
        self._splitter = EventSplitter()

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(out for event in self._splitter.feed(chunk) for out in self._event(event))

    def _event(self, event: bytes) -> list[bytes]:
        try:
            data = msgspec.json.decode(data_of(event))
        except msgspec.DecodeError:
            return []
        handler = getattr(self, f"_on_{data.get('type', '')}", None)
        return handler(data) if handler else []

    def _chunk(self, delta: Json, finish: str | None = None) -> bytes:
        return frame({"id": self._id, "object": "chat.completion.chunk",
                      "created": self._created, "model": self.model,
                      "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                   "finish_reason": finish}]})

    def _on_message_start(self, data: Json) -> list[bytes]:
        message = data.get("message", {})
        self._id = f"chatcmpl-{message.get('id', '')}"
        self.usage = _usage(message.get("usage") or {})
        return [self._chunk({"role": "assistant", "content": ""})]

    def _on_content_block_start(self, data: Json) -> list[bytes]:
        block = data.get("content_block", {})
        if block.get("type") != "tool_use":
            return []
        index = self._tool_index.setdefault(data.get("index", 0), len(self._tool_index))
        call = {"index": index, "id": block.get("id", ""), "type": "function",
                "function": {"name": block.get("name", ""), "arguments": ""}}
        return [self._chunk({"tool_calls": [call]})]

    def _on_content_block_delta(self, data: Json) -> list[bytes]:
        delta = data.get("delta", {})
        self.events += 1
        if delta.get("type") == "text_delta":
            return [self._chunk({"content": delta.get("text", "")})]
        if delta.get("type") == "input_json_delta":
            index = self._tool_index.get(data.get("index", 0), 0)
            call = {"index": index, "function": {"arguments": delta.get("partial_json", "")}}
            return [self._chunk({"tool_calls": [call]})]
        return []

    def _on_message_delta(self, data: Json) -> list[bytes]:
        if isinstance(data.get("usage"), dict):
            self.usage = _usage(data["usage"], self.usage)
        reason = (data.get("delta") or {}).get("stop_reason") or ""
        return [self._chunk({}, FINISH_REASONS.get(reason, "stop"))]

    def _on_message_stop(self, data: Json) -> list[bytes]:
        events = []
        if self.include_usage and self.usage is not None:
            events.append(frame({"id": self._id, "object": "chat.completion.chunk",
                                 "created": self._created, "model": self.model,
                                 "choices": [], "usage": _usage_json(self.usage)}))
        return [*events, DONE]

    def _on_error(self, data: Json) -> list[bytes]:
        error = data.get("error") or {}
        return [frame({"error": {"message": error.get("message", "upstream error"),
                                 "type": error.get("type", "api_error"),
                                 "code": "backend_error", "param": None}})]


class AnthropicAdapter:
    def forward_raw(self, backend: Backend, endpoint: Endpoint, body: bytes,
                    stream: bool) -> UpstreamRequest | None:
        return None  # an OpenAI body always needs translating for the Messages API

    def prepare(self, backend: Backend, endpoint: Endpoint, payload: Json,
                stream: bool) -> UpstreamRequest:
        headers = {"Content-Type": "application/json", "anthropic-version": "2023-06-01",
                   **request_headers(backend)}
        adjustments = Adjustments()
        request = to_messages_request(payload, stream, backend.config.sampling, adjustments)
        return UpstreamRequest(url=backend.base_url + "/v1/messages", headers=headers,
                               body=msgspec.json.encode(request), notes=adjustments.headers())

    def translate_body(self, body: bytes, model: str) -> tuple[bytes, Usage | None]:
        message = msgspec.json.decode(body)
        completion = to_chat_completion(message, model)
        return msgspec.json.encode(completion), _usage(message.get("usage") or {})

    def stream_translator(self, model: str, include_usage: bool,
                          count_events: bool) -> AnthropicStream:
        return AnthropicStream(model, include_usage)  # counting costs nothing here
