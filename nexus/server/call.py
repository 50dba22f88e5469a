"""One client request on its way through the gateway."""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.pipeline.types import Endpoint


class Call(msgspec.Struct, kw_only=True):
    request_id: str
    endpoint: Endpoint
    model: str
    payload: dict[str, Any]
    stream: bool = False
    include_usage: bool = False  # the client asked for the usage chunk itself
