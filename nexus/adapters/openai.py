"""OpenAI-compatible backends (Ollama, vLLM, llama.cpp, LM Studio, OpenAI): pass through."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from nexus.adapters.base import UpstreamRequest
from nexus.adapters.sse import complete_part, data_of
from nexus.backends.backend import Backend
from nexus.backends.discovery import request_headers
from nexus.core.types import Endpoint, Usage

PATHS: dict[Endpoint, str] = {
    "chat": "/v1/chat/completions",
    "completions": "/v1/completions",
    "embeddings": "/v1/embeddings",
}


class _UsageOnly(msgspec.Struct):
    usage: Usage | None = None
    choices: list[msgspec.Raw] | None = None  # items left undecoded: only emptiness matters


_decode_usage = msgspec.json.Decoder(_UsageOnly).decode
# A delta that carries text: content, reasoning, a tool call's arguments, or a legacy
# completion's text, with at least one character (the role chunk's "" carries none).
_TOKEN_CARRYING = re.compile(
    rb'"(?:content|reasoning_content|reasoning|arguments|text)": ?"(?!")')


def read_usage(body: bytes) -> tuple[Usage | None, bool]:
    """(usage, has_choices) of one response body or stream chunk; never raises."""
    try:
        parsed = _decode_usage(body)
    except msgspec.DecodeError:
        return None, True
    return parsed.usage, bool(parsed.choices)


class OpenAIStream:
    """Forwards complete events unchanged; reads usage, and hides the usage chunk nobody
    asked for. Only the events that mention token counts are looked at (servers also
    send `"usage": null` on every chunk; those pass untouched, as the rest do)."""

    __slots__ = ("_buffer", "count_events", "events", "include_usage", "usage")

    def __init__(self, include_usage: bool, count_events: bool = True) -> None:
        self.include_usage = include_usage
        self.count_events = count_events  # only a paid backend's events can be billed
        self.usage: Usage | None = None
        self.events = 0
        self._buffer = b""

    def feed(self, chunk: bytes) -> bytes:
        complete, self._buffer = complete_part(self._buffer, chunk)
        if not complete:  # no event ends in it yet: send nothing half-way
            return b""
        if self.count_events:  # events that carry tokens: not the role, finish or usage
            self.events += len(_TOKEN_CARRYING.findall(complete))
        mention = complete.find(b'"prompt_tokens"')
        if mention == -1:
            return complete
        return self._read_usage_events(complete, mention)

    def close(self) -> bytes:
        return b""  # the client sees the stream end as the backend ended it

    def _read_usage_events(self, complete: bytes, mention: int) -> bytes:
        """Read the events that mention usage, dropping the usage-only ones the client did
        not ask for; the events around them pass as they are (uncopied when none goes)."""
        pieces, start = [], 0  # the stretches between dropped events
        while mention != -1:
            separator = complete.rfind(b"\n\n", start, mention)
            begin = start if separator == -1 else separator + 2
            end = complete.find(b"\n\n", mention) + 2
            if not self._keeps(complete[begin:end - 2]):
                pieces.append(complete[start:begin])
                start = end
            mention = complete.find(b'"prompt_tokens"', end)
        if not pieces:
            return complete
        pieces.append(complete[start:])
        return b"".join(pieces)

    def _keeps(self, event: bytes) -> bool:
        usage, has_choices = read_usage(data_of(event))
        if usage is None:
            return True
        self.usage = usage
        return has_choices or self.include_usage


def _ask_for_usage(body: bytes) -> bytes:
    """The body with stream_options.include_usage as its first key. The body has been
    validated as a JSON object with a model, so it has a "{" and at least one key."""
    start = body.index(b"{") + 1
    return body[:start] + b'"stream_options":{"include_usage":true},' + body[start:]


class OpenAIAdapter:
    def prepare(self, backend: Backend, endpoint: Endpoint, payload: dict[str, Any],
                stream: bool) -> UpstreamRequest:
        if stream and endpoint != "embeddings":
            options = payload.get("stream_options")
            payload = {**payload, "stream_options": {
                **(options if isinstance(options, dict) else {}), "include_usage": True}}
        return self._request(backend, endpoint, msgspec.json.encode(payload))

    def forward_raw(self, backend: Backend, endpoint: Endpoint, body: bytes,
                    stream: bool) -> UpstreamRequest | None:
        """The client's bytes are our API's; a stream also asks for usage, spliced in
        when the client sent no stream_options of its own (otherwise they are merged)."""
        if stream and endpoint != "embeddings":
            if b'"stream_options"' in body:
                return None
            body = _ask_for_usage(body)
        return self._request(backend, endpoint, body)

    @staticmethod
    def _request(backend: Backend, endpoint: Endpoint, body: bytes) -> UpstreamRequest:
        headers = {"Content-Type": "application/json", **request_headers(backend)}
        return UpstreamRequest(url=backend.base_url + PATHS[endpoint], headers=headers,
                               body=body)

    def translate_body(self, body: bytes, model: str) -> tuple[bytes, Usage | None]:
        return body, read_usage(body)[0]

    def stream_translator(self, model: str, include_usage: bool,
                          count_events: bool) -> OpenAIStream:
        return OpenAIStream(include_usage, count_events)
