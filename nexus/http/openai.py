"""The OpenAI API's endpoints: chat, completions, embeddings, models, explain."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from nexus.backends.backend import Backend
from nexus.core.errors import NexusError, NotFound
from nexus.core.types import Endpoint, RequestFlags
from nexus.http.affinity import chat_affinity
from nexus.http.body import read_body
from nexus.http.context import GATEWAY, json_response
from nexus.http.edge import TENANT, EndpointHandler
from nexus.http.flags import request_flags, request_priority
from nexus.http.schemas import parse_body, view_requirements
from nexus.proxy.call import Call
from nexus.replica import Gateway
from nexus.routing.aliases import resolve
from nexus.routing.explain import explain
from nexus.routing.request import RoutingRequest
from nexus.tenants.model import Tenant
from nexus.tenants.table import allows_model


def _proxy(endpoint: Endpoint) -> EndpointHandler:
    """The handler of one proxied endpoint (one coroutine per request, no layers)."""

    async def proxy(request: web.Request, rid: str) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        body = await read_body(request, gateway.config.server)
        view = parse_body(endpoint, body)
        options = view.stream_options or {}
        tenant = request[TENANT]
        call = Call(request_id=rid, endpoint=endpoint, model=view.model, body=body,
                    requirements=view_requirements(view),
                    stream=view.stream and endpoint != "embeddings",
                    include_usage=bool(options.get("include_usage")),
                    flags=tenant_flags(request_flags(request.headers), tenant),
                    priority=request_priority(request.headers), tenant=tenant,
                    affinity=chat_affinity(request.headers, view))
        if tenant is not None:
            await admit(gateway, call, tenant)
        return await gateway.forwarder.serve(call, request)

    return proxy


async def admit(gateway: Gateway, call: Call, tenant: Tenant) -> None:
    """The key's models and rate limits, before routing (403 or 429 when refused)."""
    try:
        gateway.admission.check_model(tenant, call.model)
        call.rate_check, call.rate_headers = await gateway.admission.admit(
            tenant, call.requirements)
    except NexusError as refused:
        gateway.feed.record(call, None, refused.status, refused, 0.0, 0)
        raise
    gateway.stats.tenant_request(tenant)


def tenant_flags(flags: RequestFlags, tenant: Tenant | None) -> RequestFlags:
    """A restricted key makes every request restricted, like a restricted policy."""
    if tenant is None or not tenant.restricted or flags.restricted:
        return flags
    return msgspec.structs.replace(flags, restricted=True)


chat_completions = _proxy("chat")
completions = _proxy("completions")
embeddings = _proxy("embeddings")


async def routing_explain(request: web.Request, rid: str) -> web.Response:
    """Run the pipeline on a chat request body without sending it anywhere."""
    view = parse_body("chat", await read_body(request, request.app[GATEWAY].config.server))
    tenant = request[TENANT]
    routing = RoutingRequest(model=view.model, requirements=view_requirements(view),
                             request_id=rid, tenant=tenant,
                             flags=tenant_flags(request_flags(request.headers), tenant),
                             affinity=chat_affinity(request.headers, view))
    return explained(request.app[GATEWAY], routing)


def explained(gateway: Gateway, routing: RoutingRequest) -> web.Response:
    """The decision for `routing`, as its key may see it: a model the key may not use is
    the 403 the request itself would get."""
    if routing.tenant is not None:
        gateway.admission.check_model(routing.tenant, routing.model)
    return json_response(explain(gateway.router, routing))


async def list_models(request: web.Request, rid: str) -> web.Response:
    return json_response({"object": "list", "data": _models(request)})


async def retrieve_model(request: web.Request, rid: str) -> web.Response:
    """GET /v1/models/{id} (the SDKs' models.retrieve): one entry of the list."""
    name = request.match_info["model"]
    found = next((m for m in _models(request) if m["id"] == name), None)
    if found is None:
        raise NotFound(f"The model '{name}' does not exist or this key may not use it",
                       param="model", code="model_not_found")
    return json_response(found)


def _models(request: web.Request) -> list[dict[str, Any]]:
    """The models of healthy backends, aliases included, and for a client key only
    those its globs allow."""
    gateway = request.app[GATEWAY]
    available = gateway.registry.available_models()
    data = [_model_entry(model, model, backends) for model, backends in sorted(available.items())]
    for alias in sorted(gateway.config.routing.aliases):
        target = resolve(alias, gateway.config.routing.aliases)
        if target in available and alias not in available:
            data.append({**_model_entry(alias, target, available[target]), "alias_of": target})
    tenant = request.get(TENANT)
    if tenant is not None:
        data = [m for m in data if allows_model(tenant.key, m["id"])]
    return data


def _model_entry(name: str, model: str, backends: list[Backend]) -> dict[str, Any]:
    """One model; its context window is the largest any of its backends has (with where
    that figure came from), since routing picks the backend that fits."""
    windows = [w for w in (b.window(model) for b in backends) if w is not None]
    widest = max(windows, key=lambda w: w.tokens, default=None)
    return {"id": name, "object": "model", "created": 0, "owned_by": "nexus",
            "backends": [b.name for b in backends],
            "context_window": None if widest is None else msgspec.to_builtins(widest)}
