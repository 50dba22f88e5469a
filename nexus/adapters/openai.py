"""OpenAI-compatible backends (Ollama, vLLM, llama.cpp, LM Studio, OpenAI): pass through."""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.adapters.base import UpstreamRequest, Usage
from nexus.adapters.sse import data_of, split_events
from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers
from nexus.pipeline.types import Endpoint

PATHS: dict[Endpoint, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}


class _UsageOnly(msgspec.Struct):
    usage: Usage | None = None
    choices: list[Any] | None = None


_decode_usage = msgspec.json.Decoder(_UsageOnly).decode


def read_usage(body: bytes) -> tuple[Usage | None, bool]:
    """(usage, has_choices) of one response body or stream chunk; never raises."""
    try:
        parsed = _decode_usage(body)
    except msgspec.DecodeError:
        return None, True
    return parsed.usage, bool(parsed.choices)


class OpenAIStream:
    """Forwards complete events unchanged; reads usage, and hides the usage chunk nobody
    asked for. Events are only split apart in the rare chunk that carries a usage object
    (servers also send `"usage": null` on every chunk; those pass untouched)."""

    __slots__ = ("_buffer", "events", "include_usage", "usage")

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.usage: Usage | None = None
        self.events = 0
        self._buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._buffer + chunk if self._buffer else chunk
        if b"\r" in data:
            data = data.replace(b"\r\n", b"\n")
        cut = data.rfind(b"\n\n") + 2
        complete, self._buffer = data[:cut], data[cut:]
        self.events += complete.count(b"data:")
        if b'"prompt_tokens"' not in complete:
            return complete
        return b"".join(self._event(event) for event in split_events(complete))

    def _event(self, event: bytes) -> bytes:
        if b'"prompt_tokens"' not in event:
            return event + b"\n\n"
        usage, has_choices = read_usage(data_of(event))
        if usage is not None:
            self.usage = usage
            if not has_choices and not self.include_usage:
                return b""
        return event + b"\n\n"


class OpenAIAdapter:
    def prepare(self, backend: Backend, endpoint: Endpoint, payload: dict[str, Any],
                stream: bool) -> UpstreamRequest:
        if stream and endpoint != "embeddings":
            options = payload.get("stream_options")
            payload = {**payload, "stream_options": {
                **(options if isinstance(options, dict) else {}), "include_usage": True}}
        return self._request(backend, endpoint, msgspec.json.encode(payload))

    def forward_raw(self, backend: Backend, endpoint: Endpoint,
                    body: bytes) -> UpstreamRequest | None:
        return self._request(backend, endpoint, body)  # the client's bytes are our API's

    @staticmethod
    def _request(backend: Backend, endpoint: Endpoint, body: bytes) -> UpstreamRequest:
        headers = {"Content-Type": "application/json", **request_headers(backend)}
        return UpstreamRequest(url=backend.base_url + PATHS[endpoint], headers=headers,
                               body=body)

    def translate_body(self, body: bytes, model: str) -> tuple[bytes, Usage | None]:
        return body, read_usage(body)[0]

    def stream_translator(self, model: str, include_usage: bool) -> OpenAIStream:
        return OpenAIStream(include_usage)
