"""One client request on its way through the gateway, and the API it speaks.

A call's dialect is the API its client speaks when it is not OpenAI's: how its request
reaches each backend and how the answers and errors go back to it in its own shape. A
chat call has no dialect (None): the forwarder's own path, with nothing in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import msgspec
from aiohttp import web

from nexus.adapters import sse
from nexus.adapters.base import StreamTranslator, UpstreamRequest
from nexus.core.errors import NexusError
from nexus.core.types import NO_FLAGS, Endpoint, RequestFlags, Requirements, Usage
from nexus.proxy.request_id import fresh_id
from nexus.routing.affinity import AffinityKey
from nexus.routing.types import Route
from nexus.tenants.model import Tenant
from nexus.tenants.rates import RateCheck


class StreamShape(msgspec.Struct, frozen=True):
    """How a client's event stream ends and says it broke."""

    end: bytes | tuple[bytes, ...]           # the bytes its last event ends with
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

    async def completed(self) -> None:
        """The answer is whole and billed, its last byte not yet sent (state to keep)."""


_decode_object = msgspec.json.Decoder(dict[str, Any]).decode


class Call(msgspec.Struct, kw_only=True):
    request_id: str                # the client's X-Request-Id or ours; shown in headers
    endpoint: Endpoint
    model: str
    body: bytes                    # the client's bytes, forwarded as they are when possible
    requirements: Requirements = msgspec.field(default_factory=Requirements)
    stream: bool = False
    include_usage: bool = False    # the client asked for the usage chunk itself
    flags: RequestFlags = NO_FLAGS
    priority: int = 0              # X-Nexus-Priority: who waits least in the queue
    tenant: Tenant | None = None   # the key (and team) that sent it
    rate_check: RateCheck | None = None  # its admission under rate limits, settled after
    rate_headers: dict[str, str] = msgspec.field(default_factory=dict)  # x-ratelimit-*
    dialect: Dialect | None = None  # the client's API when not OpenAI's (Messages)
    route: Route | None = None      # the last route tried, for the dashboard's feed
    affinity: AffinityKey | None = None  # the conversation's key: which server keeps it
    traced: bool = False            # its trace is sampled: spans inside are recorded
    cost_micro_usd: int = 0         # what it cost, once billed
    _payload: dict[str, Any] | None = None
    _spend_id: str | None = None

    @property
    def spend_id(self) -> str:
        """The key that makes this request's spend count once: never client-chosen, and
        only made for a request that reaches a paid backend."""
        if self._spend_id is None:
            self._spend_id = fresh_id()
        return self._spend_id

    @property
    def payload(self) -> dict[str, Any]:
        """The body as a dict, decoded on first use: only a body that must change needs it."""
        if self._payload is None:
            self._payload = _decode_object(self.body)
        return self._payload
