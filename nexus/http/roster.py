"""Backends added and removed at run time, over HTTP (`nexus backends add|remove`), and
the fleet's pre-warm recommendations. The admin key's once keys exist."""

from __future__ import annotations

import msgspec
from aiohttp import web

from nexus.fleet.roster import AddBackend, view
from nexus.http.body import read_body
from nexus.http.context import GATEWAY, json_response
from nexus.http.placement import store_answers
from nexus.http.schemas import decode_view

_ADD = msgspec.json.Decoder(AddBackend)


async def add(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    wanted: AddBackend = decode_view(_ADD, await read_body(request, gateway.config.server))
    with store_answers("Backends cannot be added"):
        return json_response(await gateway.roster.add(wanted), status=201)


async def remove(request: web.Request, rid: str) -> web.Response:
    with store_answers("Backends cannot be removed"):
        return json_response(await request.app[GATEWAY].roster.remove(
            request.match_info["name"]))


async def listed(request: web.Request, rid: str) -> web.Response:
    return json_response({"data": [view(b) for b in request.app[GATEWAY].registry]})


async def recommendations(request: web.Request, rid: str) -> web.Response:
    with store_answers("Recommendations cannot be read"):
        return json_response(await request.app[GATEWAY].prewarm.current())
