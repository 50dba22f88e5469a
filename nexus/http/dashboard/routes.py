"""GET /dashboard and its API: the page, its two assets, the state (once or pushed every
second over SSE) and the explain form.

The page and its assets carry no data and are served to anyone; everything under
/dashboard/api/ answers only the admin key once any key is configured (the guard
checks), and never a client key.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources

import msgspec
from aiohttp import web

from nexus.core.errors import BadRequest, NotFound
from nexus.core.types import RequestFlags, Requirements
from nexus.http.context import GATEWAY, TENANCY, json_response
from nexus.http.dashboard.state import DashboardState, replica_card
from nexus.http.edge import EndpointHandler
from nexus.http.schemas import decode_view
from nexus.routing.explain import explain
from nexus.routing.request import RoutingRequest

PUSH_SECONDS = 1.0  # the page is told the state this often (the issue asks for 2 s at most)
_STATIC = importlib.resources.files("nexus.http.dashboard") / "static"
ASSETS = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}
_FILES = {name: (_STATIC / name).read_bytes() for name in ASSETS}
STATE = web.AppKey("dashboard_state", DashboardState)


class ExplainForm(msgspec.Struct):
    model: str
    privacy: str = "unrestricted"   # or "restricted"
    mode: str = "default"           # "strict", "flexible" or "default"
    priority: int = 0
    key: str = ""                   # a tenant key's name: explain as that key
    max_tokens: int | None = None
    vision: bool = False
    tools: bool = False


_decode_form = msgspec.json.Decoder(ExplainForm)


def attach(app: web.Application) -> None:
    """Give the app its dashboard state, and the fleet this replica's card to publish."""
    gateway = app[GATEWAY]
    app[STATE] = DashboardState(gateway)
    if gateway.fleet is not None:
        gateway.fleet.card = lambda: msgspec.json.encode(replica_card(gateway))


# The page runs only its own script and style, in no frame, and nothing it shows is
# ever read as code or markup: names reach it as text, and bidi controls are shown.
PAGE_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _file(name: str) -> web.Response:
    return web.Response(body=_FILES[name], content_type=ASSETS[name], headers=PAGE_HEADERS)


async def page(request: web.Request, rid: str) -> web.Response:
    return _file("index.html")


async def asset(request: web.Request, rid: str) -> web.Response:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise NotFound(f"No dashboard asset {name!r}")
    return _file(name)


async def state(request: web.Request, rid: str) -> web.Response:
    return web.Response(body=await request.app[STATE].encoded(),
                        content_type="application/json")


async def stream(request: web.Request, rid: str) -> web.StreamResponse:
    """The state, pushed every PUSH_SECONDS as an SSE `state` event, until the page goes."""
    shared = request.app[STATE]
    if request.method == "HEAD":
        return web.Response(content_type="text/event-stream")
    out = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                      "Cache-Control": "no-cache"})
    await out.prepare(request)
    with contextlib.suppress(ConnectionResetError):
        while True:
            await out.write(b"event: state\ndata: " + await shared.encoded() + b"\n\n")
            await asyncio.sleep(PUSH_SECONDS)
    return out


async def explain_form(request: web.Request, rid: str) -> web.Response:
    """The explain form: the pipeline's decision for the request it describes."""
    gateway = request.app[GATEWAY]
    form: ExplainForm = decode_view(_decode_form, await request.read())
    tenant = None
    if form.key:
        tenant = request.app[TENANCY].refresh().by_name(form.key)
        if tenant is None:
            raise BadRequest(f"No key named {form.key!r}", param="key")
    if form.privacy not in ("restricted", "unrestricted") or \
            form.mode not in ("strict", "flexible", "default"):
        raise BadRequest("privacy is restricted|unrestricted; mode is strict|flexible|default")
    flags = RequestFlags(restricted=form.privacy == "restricted" or
                         bool(tenant and tenant.restricted),
                         strict=form.mode == "strict", flexible=form.mode == "flexible")
    needs = Requirements(vision=form.vision, tools=form.tools,
                         max_output_tokens=form.max_tokens, input_tokens=8)
    routing = RoutingRequest(model=form.model, requirements=needs, request_id=rid,
                             tenant=tenant, flags=flags)
    return json_response(explain(gateway.router, routing))


ROUTES: list[tuple[str, str, EndpointHandler]] = [
    ("GET", "/dashboard", page),
    ("GET", "/dashboard/static/{name}", asset),
    ("GET", "/dashboard/api/state", state),
    ("GET", "/dashboard/api/stream", stream),
    ("POST", "/dashboard/api/explain", explain_form),
]
