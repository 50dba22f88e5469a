"""Build the aiohttp application of one replica."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

from aiohttp import web
from aiohttp.typedefs import Middleware

from nexus.config.errors import ConfigError
from nexus.config.schema import Config
from nexus.server import handlers
from nexus.server.gateway import Gateway
from nexus.server.handlers import GATEWAY
from nexus.server.middleware import auth_middleware, errors_middleware


def create_app(config: Config, environ: dict[str, str] | None = None) -> web.Application:
    env = dict(os.environ) if environ is None else environ
    middlewares: list[Middleware] = [errors_middleware]
    keys = client_keys(config, env)
    if keys:
        middlewares.append(auth_middleware(keys))
    app = web.Application(client_max_size=config.server.max_body_bytes,
                          middlewares=middlewares, handler_args={"max_field_size": 16384})
    app[GATEWAY] = Gateway(config, env)
    app.cleanup_ctx.append(_lifecycle)
    _add_routes(app)
    return app


def client_keys(config: Config, env: dict[str, str]) -> frozenset[bytes]:
    name = config.server.api_keys_env
    if not name:
        return frozenset()
    keys = frozenset(k.strip().encode() for k in env.get(name, "").split(",") if k.strip())
    if not keys:
        raise ConfigError("environment", name,
                          "server.api_keys_env names this variable, but it is unset or empty; "
                          "set it to comma-separated client keys")
    return keys


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    async with app[GATEWAY].running():
        yield


def _add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/chat/completions", handlers.chat_completions)
    app.router.add_post("/v1/completions", handlers.completions)
    app.router.add_post("/v1/embeddings", handlers.embeddings)
    app.router.add_post("/v1/routing/explain", handlers.routing_explain)
    app.router.add_get("/v1/models", handlers.list_models)
    app.router.add_get("/v1/stats", handlers.stats)
    app.router.add_get("/health", handlers.health)
    app.router.add_get("/metrics", handlers.metrics)
