"""Anthropic Messages API ↔ OpenAI chat completions, both ways, streaming included."""

from __future__ import annotations

import time
from typing import Any

import msgspec

from nexus.adapters import anthropic_map as m
from nexus.adapters.anthropic_params import Adjustments
from nexus.adapters.base import UpstreamRequest
from nexus.adapters.chat_chunks import ChunkWriter
from nexus.adapters.chat_to_anthropic import to_messages_request
from nexus.adapters.chat_to_messages_stream import MESSAGE_STOP
from nexus.adapters.sse import DONE, EventSplitter, data_of, frame
from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers
from nexus.core.types import Endpoint, Usage

Json = dict[str, Any]
FINISH_REASONS = m.FINISH_REASONS  # every stop reason of the SDK's StopReason literal


def to_chat_completion(message: Json, model: str) -> Json:
    content = message.get("content", [])
    text = "".join(b.get("text", "") for b in content if b["type"] == "text")
    calls = [m.tool_call_to_openai(b) for b in content if b["type"] == "tool_use"]
    reply: Json = {"role": "assistant", "content": text or None}
    if calls:
        reply["tool_calls"] = calls
    usage = m.usage_from_anthropic(message.get("usage") or {})
    return {"id": f"chatcmpl-{message.get('id', '')}", "object": "chat.completion",
            "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": reply, "logprobs": None,
                         "finish_reason": m.finish_reason(message.get("stop_reason"))}],
            "usage": m.usage_to_openai(usage)}


class AnthropicStream(ChunkWriter):
    """Turns message_start / content_block_* / message_delta events into chat chunks."""

    def __init__(self, model: str, include_usage: bool) -> None:
        super().__init__(model, include_usage)
        self._tool_index: dict[int, int] = {}
        self._splitter = EventSplitter()

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(out for event in self._splitter.feed(chunk) for out in self._event(event))

    def close(self) -> bytes:
        return b""

    def _event(self, event: bytes) -> list[bytes]:
        try:
            data = msgspec.json.decode(data_of(event))
        except msgspec.DecodeError:
            return []
        handler = getattr(self, f"_on_{data.get('type', '')}", None)
        return handler(data) if handler else []

    def _on_message_start(self, data: Json) -> list[bytes]:
        message = data.get("message", {})
        self._id = f"chatcmpl-{message.get('id', '')}"
        self.usage = m.usage_from_anthropic(message.get("usage") or {})
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
            self.usage = m.usage_from_anthropic(data["usage"], self.usage)
        reason = (data.get("delta") or {}).get("stop_reason")
        return [self._chunk({}, m.finish_reason(reason))]

    def _on_message_stop(self, data: Json) -> list[bytes]:
        events = []
        if self.include_usage and self.usage is not None:
            events.append(self._usage_chunk(m.usage_to_openai(self.usage)))
        return [*events, DONE]

    def _on_error(self, data: Json) -> list[bytes]:
        error = data.get("error") or {}
        return [frame({"error": {"message": error.get("message", "upstream error"),
                                 "type": error.get("type", "api_error"),
                                 "code": "backend_error", "param": None}})]


class NativeStream:
    """An Anthropic stream relayed to a Messages client as it is, read for its usage.
    Its last event is sent in one spelling, so the relay knows the answer is complete."""

    def __init__(self) -> None:
        self.usage: Usage | None = None
        self.events = 0
        self._splitter = EventSplitter()

    def feed(self, chunk: bytes) -> bytes:
        return b"".join(self._event(event) for event in self._splitter.feed(chunk))

    def close(self) -> bytes:
        return b""

    def _event(self, event: bytes) -> bytes:
        try:
            data = msgspec.json.decode(data_of(event))
        except msgspec.DecodeError:
            return event + b"\n\n"
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "content_block_delta":
            self.events += 1
        elif kind == "message_start":
            self.usage = m.usage_from_anthropic((data.get("message") or {}).get("usage") or {})
        elif kind == "message_delta" and isinstance(data.get("usage"), dict):
            self.usage = m.usage_from_anthropic(data["usage"], self.usage)
        elif kind == "message_stop":
            return MESSAGE_STOP
        return event + b"\n\n"


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

    def forward_native(self, backend: Backend, body: bytes,
                       client_headers: dict[str, str]) -> UpstreamRequest:
        """A Messages client's body, sent on as it is (its anthropic-version and
        anthropic-beta headers too)."""
        headers = {"Content-Type": "application/json", "anthropic-version": "2023-06-01",
                   **client_headers, **request_headers(backend)}
        return UpstreamRequest(url=backend.base_url + "/v1/messages", headers=headers,
                               body=body)

    @staticmethod
    def native_usage(body: bytes) -> Usage | None:
        try:
            message = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return None
        usage = message.get("usage") if isinstance(message, dict) else None
        return m.usage_from_anthropic(usage) if isinstance(usage, dict) else None

    def translate_body(self, body: bytes, model: str) -> tuple[bytes, Usage | None]:
        message = msgspec.json.decode(body)
        completion = to_chat_completion(message, model)
        return msgspec.json.encode(completion), m.usage_from_anthropic(message.get("usage") or {})

    def stream_translator(self, model: str, include_usage: bool,
                          count_events: bool) -> AnthropicStream:
        return AnthropicStream(model, include_usage)  # counting costs nothing here
