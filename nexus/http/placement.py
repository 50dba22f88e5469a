"""Model placement over HTTP: load, unload and migrate operations and their state
(SPEC "Model placement"; docs/lifecycle.md). Any replica answers for any operation."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Annotated

import msgspec
from aiohttp import web
from msgspec import Meta

from nexus.core.errors import BadRequest, StoreUnreachable
from nexus.http.body import read_body
from nexus.http.context import GATEWAY, json_response
from nexus.http.schemas import ModelName, decode_view
from nexus.store.errors import StoreError

Name = Annotated[str, Meta(min_length=1, max_length=256)]


class LoadRequest(msgspec.Struct):
    model: ModelName
    backend: Name
    path: Name | None = None  # a vLLM LoRA adapter's path (default: the model's name)


class MigrateRequest(msgspec.Struct, rename={"source": "from", "target": "to"}):
    model: ModelName
    source: Name
    target: Name


_LOAD = msgspec.json.Decoder(LoadRequest)
_MIGRATE = msgspec.json.Decoder(MigrateRequest)



def _accepted(operation: dict[str, object]) -> web.Response:
    response = json_response(operation, status=202)
    response.headers["Location"] = f"/v1/models/operations/{operation['id']}"
    return response


async def load(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    view: LoadRequest = decode_view(_LOAD, await read_body(request, gateway.config.server))
    with store_answers():
        return _accepted(await gateway.placement.start("load", view.model, [view.backend],
                                                       view.path))


async def unload(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    backend = request.query.get("backend")
    if not backend:
        raise BadRequest("say which backend: ?backend=NAME", param="backend")
    with store_answers():
        return _accepted(await gateway.placement.start(
            "unload", request.match_info["model"], [backend]))


async def migrate(request: web.Request, rid: str) -> web.Response:
    gateway = request.app[GATEWAY]
    view: MigrateRequest = decode_view(_MIGRATE, await read_body(request,
                                                                 gateway.config.server))
    with store_answers():
        return _accepted(await gateway.placement.start("migrate", view.model,
                                                       [view.source, view.target]))


async def operation(request: web.Request, rid: str) -> web.Response:
    with store_answers():
        return json_response(await request.app[GATEWAY].placement.get(
            request.match_info["operation_id"]))


async def operations(request: web.Request, rid: str) -> web.Response:
    with store_answers():
        return json_response({"data": await request.app[GATEWAY].placement.recent()})


@contextlib.contextmanager
def store_answers(what: str = "Operations cannot be read or started") -> Iterator[None]:
    """A store that cannot answer is a 503 saying so, never a 500."""
    try:
        yield
    except StoreError as exc:
        raise StoreUnreachable(f"{what} now: the store is unreachable ({exc})") from None
