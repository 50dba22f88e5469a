"""The adapter contract: how one API family is asked and how its answers are read."""

from __future__ import annotations

from typing import Any, Protocol

import msgspec

from nexus.backends.backend import Backend
from nexus.core.types import Endpoint, Usage

__all__ = ["Adapter", "Chained", "StreamTranslator", "UpstreamRequest", "Usage"]


class UpstreamRequest(msgspec.Struct):
    url: str
    headers: dict[str, str]
    body: bytes
    # Response headers that say what the translation changed (X-Nexus-Dropped-Params).
    notes: dict[str, str] = msgspec.field(default_factory=dict)


class StreamTranslator(Protocol):
    @property
    def usage(self) -> Usage | None: ...

    @property
    def events(self) -> int:
        """Token-carrying events relayed: about one token each, if usage never comes."""

    def feed(self, chunk: bytes) -> bytes:
        """Upstream bytes in; the client's SSE bytes ready to send out (maybe none yet)."""

    def close(self) -> bytes:
        """What to send when the backend's stream ended without its last event."""


class Chained:
    """A backend's own stream made chat chunks (`inner`), then those made the client's
    events (`outer`): how a client API meets a backend API that is not OpenAI's."""

    def __init__(self, inner: StreamTranslator, outer: StreamTranslator) -> None:
        self.inner = inner
        self.outer = outer

    @property
    def usage(self) -> Usage | None:
        return self.outer.usage or self.inner.usage

    @property
    def events(self) -> int:
        return self.outer.events

    def feed(self, chunk: bytes) -> bytes:
        return self.outer.feed(self.inner.feed(chunk))

    def close(self) -> bytes:
        return self.outer.feed(self.inner.close()) + self.outer.close()


class Adapter(Protocol):
    def prepare(self, backend: Backend, endpoint: Endpoint, payload: dict[str, Any],
                stream: bool) -> UpstreamRequest: ...

    def forward_raw(self, backend: Backend, endpoint: Endpoint, body: bytes,
                    stream: bool) -> UpstreamRequest | None:
        """The client's bytes sent as they are (or nearly), when this API can take them so
        (the caller has checked the model stays); None when they need decoding."""

    def translate_body(self, body: bytes, model: str) -> tuple[bytes, Usage | None]: ...

    def stream_translator(self, model: str, include_usage: bool,
                          count_events: bool) -> StreamTranslator:
        """count_events: keep `events` (a paid backend's stream may have to be billed by
        them); a free backend's translator may skip counting."""
