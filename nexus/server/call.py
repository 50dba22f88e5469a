"""One client request on its way through the gateway."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import msgspec

from nexus.pipeline.types import NO_FLAGS, Endpoint, RequestFlags, Requirements, Route
from nexus.server.request_id import fresh_id
from nexus.server.schemas import decode_object
from nexus.tenants.model import Tenant
from nexus.tenants.rates import RateCheck

if TYPE_CHECKING:
    from nexus.server.dialect import Dialect


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
            self._payload = decode_object(self.body)
        return self._payload
