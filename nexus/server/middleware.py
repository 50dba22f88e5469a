"""Edge middlewares: every error leaves in the OpenAI shape; /v1 needs a bearer key."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

import msgspec
from aiohttp import web
from aiohttp.typedefs import Middleware
from multidict import istr

from nexus.errors import NexusError, NoViableBackend, Unauthorized, error_for_status
from nexus.server.request_id import request_id

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("nexus_request_id", str)
REQUEST_ID_HEADER = istr("X-Request-Id")  # case folded once, not per request


def error_response(error: NexusError, rid: str) -> web.Response:
    headers = {"X-Nexus-Request-Id": rid}
    if isinstance(error, NoViableBackend) and error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return web.Response(status=error.status, body=msgspec.json.encode(error.body()),
                        content_type="application/json", headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rid = request_id(request.headers.get(REQUEST_ID_HEADER))
    request[REQUEST_ID] = rid
    try:
        return await handler(request)
    except NexusError as error:
        return error_response(error, rid)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(error_for_status(exc.status, _http_message(exc)), rid)
    except Exception:
        log.exception("unexpected error serving request %s", rid)
        return error_response(NexusError("Internal error; the gateway log has details "
                                         f"under request id {rid}"), rid)


def _http_message(exc: web.HTTPException) -> str:
    if exc.status == 413:
        return "The request body is larger than the gateway accepts (server.max_body_bytes)"
    if exc.status == 404:
        return "No such endpoint; see /v1/chat/completions, /v1/models, /health"
    return exc.reason


def auth_middleware(keys: frozenset[bytes]) -> Middleware:
    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/v1/") and not _authorized(request, keys):
            raise Unauthorized("Missing or invalid API key: send 'Authorization: Bearer <key>'")
        return await handler(request)

    return authenticate


def _authorized(request: web.Request, keys: frozenset[bytes]) -> bool:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return False
    presented = token.strip().encode()
    matched = False
    for key in keys:  # compare against every key so timing does not tell which one matched
        matched |= hmac.compare_digest(presented, key)
    return matched
