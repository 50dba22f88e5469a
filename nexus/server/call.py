"""One client request on its way through the gateway."""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.pipeline.types import NO_FLAGS, Endpoint, RequestFlags
from nexus.server.request_id import fresh_id


class Call(msgspec.Struct, kw_only=True):
    request_id: str                # the client's X-Request-Id or ours; shown in headers
    endpoint: Endpoint
    model: str
    payload: dict[str, Any]
    body: bytes = b""              # the client's bytes, forwarded as they are when possible
    stream: bool = False
    include_usage: bool = False    # the client asked for the usage chunk itself
    flags: RequestFlags = NO_FLAGS
    priority: int = 0              # X-Nexus-Priority: who waits least in the queue
    spend_id: str = msgspec.field(default_factory=fresh_id)  # never client-chosen
