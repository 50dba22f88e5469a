"""Anthropic's Messages API for clients: POST /v1/messages and /v1/messages/count_tokens.

A Messages request goes through the same admission and pipeline as a chat request
(privacy, budgets, tiers, quality, tenants, queue, retries, fallbacks); only its shape
differs, and that is the dialect's business (messages_dialect.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from aiohttp import web
from msgspec import Meta

from nexus.core.errors import BadRequest
from nexus.http import openai, responses
from nexus.http.affinity import messages_affinity
from nexus.http.body import read_body
from nexus.http.context import GATEWAY, json_response
from nexus.http.edge import TENANT
from nexus.http.flags import request_flags, request_priority
from nexus.http.openai import admit, tenant_flags
from nexus.http.schemas import ModelName, decode_object, decode_view
from nexus.proxy.call import Call
from nexus.proxy.messages_dialect import MessagesDialect, client_headers
from nexus.routing.request import RoutingRequest
from nexus.routing.requirements import CHARS_PER_TOKEN, requirements_of_messages

Json = dict[str, Any]


class Turn(msgspec.Struct):
    role: Literal["user", "assistant"]
    content: str | list[dict[str, Any]]


class CountTokensRequest(msgspec.Struct):
    model: ModelName
    messages: Annotated[list[Turn], Meta(min_length=1)]
    system: str | list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None


class MessagesRequest(CountTokensRequest):
    max_tokens: Annotated[int, Meta(ge=1)] = 0  # required: checked below, with its name
    stream: bool = False
    stop_sequences: list[str] | None = None
    temperature: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    top_k: Annotated[int, Meta(ge=0)] | None = None


_MESSAGES = msgspec.json.Decoder(MessagesRequest)
_COUNT = msgspec.json.Decoder(CountTokensRequest)


def _parse(body: bytes) -> tuple[MessagesRequest, Json]:
    view: MessagesRequest = decode_view(_MESSAGES, body)
    if view.max_tokens == 0:
        raise BadRequest("Missing required field 'max_tokens'", param="max_tokens")
    return view, decode_object(body)


async def messages(request: web.Request, rid: str) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    body = await read_body(request, gateway.config.server)
    view, payload = _parse(body)
    tenant = request[TENANT]
    call = Call(request_id=rid, endpoint="chat", model=view.model, body=body,
                requirements=requirements_of_messages(payload), stream=view.stream,
                flags=tenant_flags(request_flags(request.headers), tenant),
                priority=request_priority(request.headers), tenant=tenant,
                dialect=MessagesDialect(body, payload, client_headers(request.headers)),
                affinity=messages_affinity(request.headers, payload))
    if tenant is not None:
        await admit(gateway, call, tenant)
    return await gateway.forwarder.serve(call, request)


async def count_tokens(request: web.Request, rid: str) -> web.Response:
    """The gateway's estimate, the one routing uses to fit a prompt into a context window
    (the header says so): no backend is asked, and nothing is billed."""
    gateway = request.app[GATEWAY]
    body = await read_body(request, gateway.config.server)
    view: CountTokensRequest = decode_view(_COUNT, body)
    tenant = request[TENANT]
    if tenant is not None:
        gateway.admission.check_model(tenant, view.model)
    payload = decode_object(body)
    tools = len(msgspec.json.encode(view.tools)) if view.tools else 0
    tokens = requirements_of_messages(payload).input_tokens + tools // CHARS_PER_TOKEN
    response = json_response({"input_tokens": tokens})
    response.headers["X-Nexus-Token-Count"] = "estimated"
    return response


async def messages_explain(request: web.Request, rid: str) -> web.Response:
    """/v1/routing/explain for a Messages body: the pipeline's decision, nothing sent."""
    gateway = request.app[GATEWAY]
    view, payload = _parse(await read_body(request, gateway.config.server))
    tenant = request[TENANT]
    routing = RoutingRequest(model=view.model, requirements=requirements_of_messages(payload),
                             request_id=rid, tenant=tenant,
                             flags=tenant_flags(request_flags(request.headers), tenant),
                             affinity=messages_affinity(request.headers, payload))
    return openai.explained(gateway, routing)


async def routing_explain(request: web.Request, rid: str) -> web.Response:
    """POST /v1/routing/explain takes a chat body, a Messages body with ?format=messages,
    or a Responses body with ?format=responses."""
    if request.query.get("format") == "messages":
        return await messages_explain(request, rid)
    if request.query.get("format") == "responses":
        return await responses.explain(request, rid)
    return await openai.routing_explain(request, rid)
