"""The edge of every endpoint: a request id, the client key on /v1 (the admin key on
/admin), and every error answered in the OpenAI shape.

Each route's handler is wrapped once, when the app is built, instead of running
through aiohttp middlewares: those add two coroutine layers and a lookup to every
request, and the proxy path is where the gateway's own time counts.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web
from multidict import istr

from nexus.core.errors import (
    ClientDisconnected,
    Forbidden,
    NexusError,
    Unauthorized,
    error_for_status,
)
from nexus.http.auth import Tenancy, presented_secret
from nexus.http.connections import Edge
from nexus.proxy.request_id import request_id
from nexus.tenants.model import Tenant

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
EndpointHandler = Callable[[web.Request, str], Awaitable[web.StreamResponse]]  # (request, its id)
REQUEST_ID_HEADER = istr("X-Request-Id")  # case folded once, not per request
TENANT = web.RequestKey[Tenant | None]("tenant")  # who sent a /v1/ request (None: open)
AS_ADMIN = web.RequestKey[bool]("as_admin")  # a read endpoint asked with the admin key
# What the admin key reads besides /admin/ and the dashboard: what a client key reads.
ADMIN_READS = frozenset({"/v1/stats", "/v1/budget", "/v1/models", "/v1/routing/explain"})
ADMIN_READ_PREFIXES = ("/v1/models/",)  # one model: as the list
# Model placement (load, unload, migrate, operations): the admin key's once keys exist.
# So are the backends added at run time and the fleet's pre-warm recommendations.
PLACEMENT = ("/v1/models/load", "/v1/models/migrate", "/v1/models/operations",
             "/v1/backends", "/v1/fleet/")


ErrorRenderer = Callable[[NexusError, str], web.Response]  # (error, request id) → answer


def guarded(endpoint: EndpointHandler, tenancy: Tenancy, edge: Edge,
            render: ErrorRenderer | None = None) -> Handler:
    """The endpoint as aiohttp calls it. Paths under /v1/ need a client key once any key
    exists (the request's tenant is kept under TENANT), or the admin key on the read
    endpoints (kept under AS_ADMIN); /admin/ needs the admin key.
    Errors take the OpenAI shape unless `render` gives the endpoint's own API's."""
    error_response = render or openai_error_response

    async def handle(request: web.Request) -> web.StreamResponse:
        rid = request_id(request.headers.get(REQUEST_ID_HEADER))
        try:
            _admit(tenancy, request)
            return await endpoint(request, rid)
        except ClientDisconnected as gone:  # nobody to answer: counted, logged quietly
            edge.client_error("disconnected", gone.message)
            return error_response(gone, rid)
        except NexusError as error:
            return error_response(error, rid)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(error_for_status(exc.status, _http_message(exc)), rid)
            if "Allow" in exc.headers:  # a 405 says which methods the path takes
                response.headers["Allow"] = exc.headers["Allow"]
            return response
        except ConnectionError as exc:  # the client left while we answered
            edge.client_error("disconnected", f"{exc.__class__.__name__}: {exc}")
            raise
        except Exception:
            log.exception("unexpected error serving request %s", rid)
            return error_response(NexusError("Internal error; the gateway log has details "
                                             f"under request id {rid}"), rid)

    return handle


def _admit(tenancy: Tenancy, request: web.Request) -> None:
    """Who may ask this path: raises Unauthorized or Forbidden when the request may not."""
    path = request.path
    if path.startswith(PLACEMENT) or (request.method == "DELETE"
                                      and path.startswith("/v1/models/")):
        _admit_placement(tenancy, request)
    elif path.startswith("/v1/"):
        if (path in ADMIN_READS or path.startswith(ADMIN_READ_PREFIXES)) and \
                tenancy.is_admin(request.headers):
            request[AS_ADMIN], request[TENANT] = True, None
        else:
            request[TENANT] = tenancy.authenticate(request.headers)
    elif path.startswith("/admin/") or path == "/admin":
        _admit_admin(tenancy, request)
    elif path.startswith("/dashboard/api/"):
        _admit_dashboard(tenancy, request)


def _admit_admin(tenancy: Tenancy, request: web.Request) -> None:
    if tenancy.admin_key is None:
        raise Forbidden("The admin API is off: set server.admin_key_env to the name of the "
                        "variable holding the admin key")
    if not tenancy.is_admin(request.headers):
        raise Unauthorized(_admin_hint(request, "The admin API"))


def _admit_placement(tenancy: Tenancy, request: web.Request) -> None:
    request[TENANT] = None
    _admin_once_keys_exist(tenancy, request, "Model placement")


def _admit_dashboard(tenancy: Tenancy, request: web.Request) -> None:
    _admin_once_keys_exist(tenancy, request, "The dashboard")


def _admin_once_keys_exist(tenancy: Tenancy, request: web.Request, what: str) -> None:
    """Open while no key exists, like the rest of the gateway; then the admin key only."""
    tenancy.refresh()
    if tenancy.admin_key is None and not tenancy.required:
        return
    if tenancy.admin_key is None:
        raise Forbidden(f"{what} needs the admin key once client keys exist: set "
                        "server.admin_key_env to the name of the variable holding it")
    if not tenancy.is_admin(request.headers):
        raise Unauthorized(_admin_hint(request, what))


def _admin_hint(request: web.Request, what: str) -> str:
    """Why an admin path refused: no key at all, or a key that is not the admin key."""
    sent = presented_secret(request.headers) is not None
    return (f"{what} needs the admin key (server.admin_key_env)"
            + ("; the key sent is not it, and a client key is not one" if sent else
               ": send it as 'Authorization: Bearer <admin key>' (the CLI's "
               "--admin-key-env names the variable holding it)"))


def openai_error_response(error: NexusError, rid: str) -> web.Response:
    headers = {"X-Nexus-Request-Id": rid, **error.headers}
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return web.Response(status=error.status, body=msgspec.json.encode(error.body()),
                        content_type="application/json", headers=headers)


def no_route(methods_by_path: dict[str, frozenset[str]]) -> EndpointHandler:
    """The endpoint behind every path and method no route takes: 405 for a known path
    asked with the wrong method, 404 for the rest."""

    async def answer(request: web.Request, rid: str) -> web.StreamResponse:
        allowed = methods_by_path.get(request.path)
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
        raise web.HTTPNotFound()

    return answer


def _http_message(exc: web.HTTPException) -> str:
    if exc.status == 413:
        return "The request body is larger than the gateway accepts (server.max_body_bytes)"
    if exc.status == 404:
        return ("No such endpoint; Nexus serves /v1/chat/completions, /v1/completions, "
                "/v1/embeddings, /v1/responses, /v1/messages, /v1/messages/count_tokens, "
                "/v1/models, /v1/routing/explain, /v1/stats, /v1/budget, /health, /metrics, "
                "/dashboard, and for operators /admin/keys, /admin/teams, /v1/models/load, "
                "/v1/models/operations, /v1/backends, /v1/fleet/recommendations")
    return exc.reason
