"""HTTP endpoints: thin functions from request to response."""

from __future__ import annotations

import os
import re
from typing import Any

import msgspec
from aiohttp import web

from nexus import __version__
from nexus.backends.backend import Backend
from nexus.backends.health import Health
from nexus.budget_report import budget_report
from nexus.errors import BadRequest, NexusError
from nexus.pipeline.aliases import resolve
from nexus.pipeline.types import Endpoint, RequestFlags
from nexus.routing.explain import explain
from nexus.routing.request import RoutingRequest
from nexus.server.body import read_body
from nexus.server.call import Call
from nexus.server.flags import request_flags, request_priority
from nexus.server.gateway import Gateway
from nexus.server.guard import TENANT, EndpointHandler
from nexus.server.metrics import render_metrics
from nexus.server.schemas import parse_body, view_requirements
from nexus.tenants.model import Tenant

GATEWAY = web.AppKey("gateway", Gateway)
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")
_encode = msgspec.json.Encoder().encode


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=_encode(data), status=status, content_type="application/json")


def _proxy(endpoint: Endpoint) -> EndpointHandler:
    """The handler of one proxied endpoint (one coroutine per request, no layers)."""

    async def proxy(request: web.Request, rid: str) -> web.StreamResponse:
        gateway = request.app[GATEWAY]
        body = await read_body(request, gateway.config.server.max_body_bytes)
        view = parse_body(endpoint, body)
        options = view.stream_options or {}
        tenant = request[TENANT]
        call = Call(request_id=rid, endpoint=endpoint, model=view.model, body=body,
                    requirements=view_requirements(view),
                    stream=view.stream and endpoint != "embeddings",
                    include_usage=bool(options.get("include_usage")),
                    flags=tenant_flags(request_flags(request.headers), tenant),
                    priority=request_priority(request.headers), tenant=tenant)
        if tenant is not None:
            await admit(gateway, call, tenant)
        return await gateway.forwarder.serve(call, request)

    return proxy


async def admit(gateway: Gateway, call: Call, tenant: Tenant) -> None:
    """The key's models and rate limits, before routing (403 or 429 when refused)."""
    try:
        gateway.admission.check_model(tenant, call.model)
        call.rate_check, call.rate_headers = await gateway.admission.admit(
            tenant, call.request_id, call.requirements)
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
    view = parse_body("chat", await read_body(request,
                                              request.app[GATEWAY].config.server.max_body_bytes))
    tenant = request[TENANT]
    routing = RoutingRequest(model=view.model, requirements=view_requirements(view),
                             request_id=rid, tenant=tenant,
                             flags=tenant_flags(request_flags(request.headers), tenant))
    return json_response(explain(request.app[GATEWAY].router, routing))


async def list_models(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    available = gateway.registry.available_models()
    data = [_model_entry(model, model, backends) for model, backends in sorted(available.items())]
    for alias in sorted(gateway.config.routing.aliases):
        target = resolve(alias, gateway.config.routing.aliases)
        if target in available and alias not in available:
            data.append({**_model_entry(alias, target, available[target]), "alias_of": target})
    return json_response({"object": "list", "data": data})


def _model_entry(name: str, model: str, backends: list[Backend]) -> dict[str, Any]:
    """One model; its context window is the largest any of its backends has (with where
    that figure came from), since routing picks the backend that fits."""
    windows = [w for w in (b.window(model) for b in backends) if w is not None]
    widest = max(windows, key=lambda w: w.tokens, default=None)
    return {"id": name, "object": "model", "created": 0, "owned_by": "nexus",
            "backends": [b.name for b in backends],
            "context_window": None if widest is None else msgspec.to_builtins(widest)}


async def health(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    counts = {state.value: 0 for state in Health}
    for backend in gateway.registry:
        counts[backend.health.state.value] += 1
    failing = gateway.supervisor.failing()
    return json_response({
        "status": "ok" if counts["healthy"] and not failing else "degraded",
        "version": __version__,
        "uptime_seconds": round(gateway.stats.uptime(), 3),
        "backends": {"total": len(gateway.registry), **counts},
        "models": len(gateway.registry.available_models()),
        "replica": _replica(gateway),
        "store": msgspec.to_builtins(gateway.store.status()),
        "loops": {status.name: msgspec.to_builtins(status)
                  for status in gateway.supervisor.loops.values()},
    })


def _replica(gateway: Gateway) -> dict[str, Any]:
    fleet = gateway.fleet
    if fleet is None:  # alone: it leads itself
        return {"id": gateway.replica_id, "pid": os.getpid(), "leader": True, "epoch": None,
                "fleet_size": 1}
    return {"id": gateway.replica_id, "pid": os.getpid(), "leader": fleet.leadership.leading,
            "epoch": fleet.leadership.epoch or None, "fleet_size": fleet.replica_count}


async def stats(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    return json_response({
        "uptime_seconds": round(gateway.stats.uptime(), 3),
        "backends": [_backend_stats(gateway, b.name) for b in gateway.registry],
        "tenants": {kind: {name: {"requests": requests[name], "spend_micro_usd": spend[name]}
                           for name in sorted(set(requests) | set(spend))}
                    for kind, requests, spend in (
                        ("keys", gateway.stats.key_requests, gateway.stats.key_spend),
                        ("teams", gateway.stats.team_requests, gateway.stats.team_spend))},
    })


def _backend_stats(gateway: Gateway, name: str) -> dict[str, Any]:
    backend = gateway.registry.get(name)
    assert backend is not None
    counters = gateway.stats
    return {
        "name": name, "type": backend.config.type, "zone": backend.config.zone,
        "state": backend.health.state.value, "reason": backend.health.reason,
        "loading_eta": backend.health.eta,
        "models": sorted(backend.models), "in_flight": backend.in_flight,
        "context_windows": {m: msgspec.to_builtins(w) for m in sorted(backend.models)
                            if (w := backend.window(m)) is not None},
        "capabilities": {m: sorted(c) for m, c in sorted(backend.state.capabilities.items())},
        "latency_ema_ms": backend.latency_ema_ms,
        "responses": {str(s): n for (b, s), n in counters.responses.items() if b == name},
        "failures": {k: n for (b, k), n in counters.failures.items() if b == name},
        "prompt_tokens": counters.prompt_tokens[name],
        "completion_tokens": counters.completion_tokens[name],
        # The part of the token counts estimated because the backend reported none.
        "estimated_prompt_tokens": counters.estimated_prompt_tokens[name],
        "estimated_completion_tokens": counters.estimated_completion_tokens[name],
    }


async def metrics(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    return web.Response(text=render_metrics(gateway.registry, gateway.stats,
                                            gateway.store.status()),
                        content_type="text/plain", charset="utf-8")


async def budget(request: web.Request, rid: str) -> web.Response:
    """This replica's view of the month's spend (the fleet's, when it shares a Redis)."""
    gateway = request.app[GATEWAY]
    month = request.query.get("month") or gateway.store.budget_view().month
    if not _MONTH.fullmatch(month):
        raise BadRequest(f"month must be YYYY-MM, not {month!r}", param="month")
    spend = await gateway.store.breakdown(month)
    leader = _replica(gateway)
    return json_response(budget_report(spend, gateway.config.routing.budget,
                                       leader["id"] if leader["leader"] else None))
