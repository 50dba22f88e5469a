"""Build the aiohttp application of one replica."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from aiohttp import web

from nexus.config.schema import Config
from nexus.http import info, messages, openai, placement, responses, roster
from nexus.http.admin import ADMIN_ROUTES
from nexus.http.auth import Tenancy
from nexus.http.connections import Edge
from nexus.http.context import EDGE, GATEWAY, TENANCY
from nexus.http.dashboard import routes as dashboard
from nexus.http.edge import EndpointHandler, guarded, no_route
from nexus.proxy.anthropic_errors import anthropic_error_response
from nexus.replica import Gateway


def create_app(config: Config, environ: dict[str, str] | None = None) -> web.Application:
    env = dict(os.environ) if environ is None else environ
    app = web.Application(client_max_size=config.server.max_body_bytes,
                          # nexus.http.body inflates gzip and deflate, bounded
                          handler_args={"max_field_size": 16384, "auto_decompress": False})
    gateway = app[GATEWAY] = Gateway(config, env)
    tenancy = app[TENANCY] = Tenancy(config, gateway.store, env)
    app[EDGE] = Edge(config.server)
    dashboard.attach(app)
    app.cleanup_ctx.append(_lifecycle)
    _add_routes(app, tenancy, app[EDGE])
    return app


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    async with app[GATEWAY].running():
        yield


ROUTES: list[tuple[str, str, EndpointHandler]] = [
    ("POST", "/v1/chat/completions", openai.chat_completions),
    ("POST", "/v1/completions", openai.completions),
    ("POST", "/v1/embeddings", openai.embeddings),
    ("POST", "/v1/responses", responses.create),
    ("GET", "/v1/responses/{response_id}", responses.retrieve),
    ("DELETE", "/v1/responses/{response_id}", responses.delete),
    ("GET", "/v1/responses/{response_id}/input_items", responses.input_items_of),
    ("POST", "/v1/routing/explain", messages.routing_explain),
    ("GET", "/v1/models", openai.list_models),
    ("POST", "/v1/models/load", placement.load),
    ("POST", "/v1/models/migrate", placement.migrate),
    ("GET", "/v1/models/operations", placement.operations),
    ("GET", "/v1/models/operations/{operation_id}", placement.operation),
    ("DELETE", "/v1/models/{model:.+}", placement.unload),
    ("GET", "/v1/models/{model:.+}", openai.retrieve_model),
    ("GET", "/v1/backends", roster.listed),
    ("POST", "/v1/backends", roster.add),
    ("DELETE", "/v1/backends/{name}", roster.remove),
    ("GET", "/v1/fleet/recommendations", roster.recommendations),
    ("GET", "/v1/stats", info.stats),
    ("GET", "/v1/budget", info.budget),
    ("GET", "/health", info.health),
    ("GET", "/metrics", info.metrics),
    *ADMIN_ROUTES,
    *dashboard.ROUTES,
]
# Anthropic's Messages API: its errors in Anthropic's shape.
MESSAGES_ROUTES: list[tuple[str, str, EndpointHandler]] = [
    ("POST", "/v1/messages", messages.messages),
    ("POST", "/v1/messages/count_tokens", messages.count_tokens),
]


def _add_routes(app: web.Application, tenancy: Tenancy, edge: Edge) -> None:
    methods: dict[str, frozenset[str]] = {}
    for method, path, endpoint in MESSAGES_ROUTES:
        app.router.add_route(method, path,
                             guarded(endpoint, tenancy, edge, anthropic_error_response))
        methods[path] = frozenset({method})
    for method, path, endpoint in ROUTES:
        app.router.add_route(method, path, guarded(endpoint, tenancy, edge))
        if method == "GET":
            app.router.add_route("HEAD", path, guarded(endpoint, tenancy, edge))
        methods[path] = methods.get(path, frozenset()) | {method}
    # Registered last: it takes what no route above took, in the OpenAI error shape.
    app.router.add_route("*", "/{anything:.*}", guarded(no_route(methods), tenancy, edge))
