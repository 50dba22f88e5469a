"""The API a client speaks, when it is not OpenAI's: how its request reaches each backend
and how the answers and errors go back to it in its own shape.

A chat call has no dialect (None): the forwarder's own path, with nothing in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import msgspec
from aiohttp import web

from nexus.adapters import sse
from nexus.adapters.base import StreamTranslator, UpstreamRequest, Usage
from nexus.errors import NexusError

if TYPE_CHECKING:
    from nexus.pipeline.types import Route
    from nexus.server.call import Call


class StreamShape(msgspec.Struct, frozen=True):
    """How a client's event stream ends and says it broke."""

    end: bytes                               # the bytes its last event ends with
    error: Callable[[str, str], bytes]       # (message, code) → an error event


OPENAI_STREAM = StreamShape(end=b"[DONE]\n\n", error=sse.error_event)


class Dialect(Protocol):
    shape: StreamShape

    def upstream(self, route: Route, call: Call) -> UpstreamRequest:
        """The request for this route's backend (NexusError: this backend cannot take it)."""

    def reply(self, route: Route, body: bytes, estimate: Usage) -> tuple[bytes, Usage, bool]:
        """A whole answer in the client's shape, with its usage and whether that usage
        is the estimate (the backend reported none)."""

    def stream_translator(self, route: Route, call: Call) -> StreamTranslator: ...

    def error_response(self, error: NexusError, headers: dict[str, str]) -> web.Response: ...
