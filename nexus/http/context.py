"""What every handler reaches: the replica and its tenancy on the app, and JSON replies."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from nexus.http.auth import Tenancy
from nexus.replica import Gateway

GATEWAY = web.AppKey("gateway", Gateway)
TENANCY = web.AppKey("tenancy", Tenancy)
_encode = msgspec.json.Encoder().encode


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(data), status=status, content_type="application/json")
