"""What every handler reaches: the replica, its tenancy and its client connections on
the app, and JSON replies."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from nexus.http.auth import Tenancy
from nexus.http.connections import Edge
from nexus.replica import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
TENANCY = web.AppKey("tenancy", Tenancy)
EDGE = web.AppKey("edge", Edge)  # the client connections' limits and counts
_encode = msgspec.json.Encoder().encode


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(data), status=status, content_type="application/json")
