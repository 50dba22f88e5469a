"""OpenAI's Responses API for clients (Codex, the Agents SDK): POST /v1/responses and
GET/DELETE /v1/responses/{id} (and its input_items).

A Responses request goes through the same admission and pipeline as a chat request;
routing reads the chat request it would translate to (its size, images, tools, JSON
format), and its affinity key is its conversation's: the one its previous response
was routed by, so every turn of a chain goes to the server that holds its prefix.

State: with `store` (the default) the finished response and its whole input are kept
in the store (Redis, or this replica's memory) for `[responses] ttl_seconds`, readable
only with the key that made it. `store: false` keeps nothing.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from nexus.adapters.anthropic_params import Adjustments
from nexus.adapters.responses_to_chat import to_chat_request
from nexus.core.errors import BadRequest, NotFound, StoreUnreachable
from nexus.http import openai
from nexus.http.affinity import responses_affinity
from nexus.http.body import read_body
from nexus.http.context import GATEWAY, json_response
from nexus.http.edge import TENANT
from nexus.http.flags import request_flags, request_priority
from nexus.http.openai import admit, tenant_flags
from nexus.http.schemas import ModelName, decode_object, decode_view
from nexus.proxy.call import Call
from nexus.proxy.responses_dialect import ResponsesDialect
from nexus.replica import Gateway
from nexus.routing.affinity import AffinityKey
from nexus.routing.request import RoutingRequest
from nexus.routing.requirements import requirements_of
from nexus.store.errors import StoreError
from nexus.tenants.model import Tenant

log = logging.getLogger(__name__)
Json = dict[str, Any]
MAX_ID = 256
OUTPUT_AS_INPUT = frozenset({"message", "function_call", "reasoning"})


class ResponsesRequest(msgspec.Struct):
    model: ModelName
    input: str | list[dict[str, Any]] = ""
    instructions: str | None = None
    stream: bool = False
    store: bool = True
    previous_response_id: Annotated[str, Meta(min_length=1, max_length=MAX_ID)] | None = None
    max_output_tokens: Annotated[int, Meta(ge=1)] | None = None
    temperature: Annotated[float, Meta(ge=0, le=2)] | None = None
    top_p: Annotated[float, Meta(ge=0, le=1)] | None = None
    tools: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None


class StoredResponse(msgspec.Struct):
    """What the store keeps of one response: whose it is, its whole input (earlier
    turns included), the response, and the conversation's affinity key."""

    owner: str
    input: list[Json]
    response: Json
    affinity: AffinityKey | None = None

    def history(self) -> list[Json]:
        """The conversation up to and including this response, as the next turn's input."""
        output = [item for item in self.response.get("output") or ()
                  if isinstance(item, dict) and item.get("type") in OUTPUT_AS_INPUT]
        return [*self.input, *output]


_REQUEST = msgspec.json.Decoder(ResponsesRequest)
_STORED = msgspec.json.Decoder(StoredResponse)
_encode = msgspec.json.Encoder().encode


def owner_of(tenant: Tenant | None) -> str:
    return tenant.key.name if tenant is not None else ""


class Turn(msgspec.Struct):
    """One Responses request read for routing: the chat request it becomes (with the
    earlier turns), and the conversation's affinity key."""

    view: ResponsesRequest
    body: bytes
    payload: Json
    history: list[Json]
    chat: Json
    affinity: AffinityKey | None


async def _read(request: web.Request, gateway: Gateway) -> Turn:
    body = await read_body(request, gateway.config.server)
    view: ResponsesRequest = decode_view(_REQUEST, body)
    if view.input == "" or view.input == []:
        raise BadRequest("Missing required parameter: 'input'", param="input")
    payload = decode_object(body)
    earlier = await _previous(gateway, view.previous_response_id, owner_of(request[TENANT]))
    history = earlier.history() if earlier is not None else []
    chat = to_chat_request(payload, history, Adjustments())
    affinity = (earlier.affinity if earlier is not None else None) or \
        responses_affinity(request.headers, payload, chat["messages"])
    return Turn(view, body, payload, history, chat, affinity)


async def create(request: web.Request, rid: str) -> web.StreamResponse:
    gateway = request.app[GATEWAY]
    turn = await _read(request, gateway)
    tenant = request[TENANT]
    dialect = ResponsesDialect(turn.payload, turn.history, gateway.responses_support.native,
                               _keeper(gateway, owner_of(tenant), turn.view.store,
                                       turn.affinity))
    call = Call(request_id=rid, endpoint="chat", model=turn.view.model, body=turn.body,
                requirements=requirements_of(turn.chat), stream=turn.view.stream,
                flags=tenant_flags(request_flags(request.headers), tenant),
                priority=request_priority(request.headers), tenant=tenant,
                dialect=dialect, affinity=turn.affinity)
    if tenant is not None:
        await admit(gateway, call, tenant)
    return await gateway.forwarder.serve(call, request)


async def explain(request: web.Request, rid: str) -> web.Response:
    """/v1/routing/explain?format=responses: the pipeline's decision, nothing sent."""
    gateway = request.app[GATEWAY]
    turn = await _read(request, gateway)
    tenant = request[TENANT]
    routing = RoutingRequest(model=turn.view.model, requirements=requirements_of(turn.chat),
                             request_id=rid, tenant=tenant,
                             flags=tenant_flags(request_flags(request.headers), tenant),
                             affinity=turn.affinity)
    return openai.explained(gateway, routing)


async def _previous(gateway: Gateway, response_id: str | None,
                    owner: str) -> StoredResponse | None:
    if response_id is None:
        return None
    stored = await _load(gateway, response_id, owner)
    if stored is None:
        raise BadRequest(f"Previous response with id '{response_id}' not found.",
                         param="previous_response_id", code="previous_response_not_found")
    return stored


async def _load(gateway: Gateway, response_id: str, owner: str) -> StoredResponse | None:
    """A stored response, only for the key that made it (another key: as if unknown)."""
    try:
        raw = await gateway.store.load_response(response_id)
    except StoreError as exc:
        raise StoreUnreachable("Stored responses cannot be read now: the store is "
                               f"unreachable ({exc})") from None
    if raw is None:
        return None
    try:
        stored = _STORED.decode(raw)
    except msgspec.DecodeError:
        log.error("stored response %s is unreadable: ignored", response_id)
        return None
    return stored if stored.owner == owner else None


def _keeper(gateway: Gateway, owner: str, store: bool, affinity: AffinityKey | None) -> Any:
    async def keep(dialect: ResponsesDialect) -> None:
        response = dialect.finished()
        if not store or response is None or not isinstance(response.get("id"), str):
            return
        record = _encode(StoredResponse(owner, [*dialect.history, *_with_ids(dialect.items)],
                                        response, affinity))
        if len(record) > gateway.config.responses.max_stored_bytes:
            log.warning("response %s not stored: %d bytes, over [responses] "
                        "max_stored_bytes", response["id"], len(record))
            return
        try:
            await gateway.store.save_response(response["id"], record,
                                              gateway.config.responses.ttl_seconds)
        except StoreError as exc:  # the answer still goes out; the next turn will say
            log.warning("response %s not stored: %s", response["id"], exc)

    return keep


def _with_ids(items: list[Json]) -> list[Json]:
    """Input items as the API lists them: each with an id."""
    return [item if "id" in item else {**item, "id": f"msg_in_{index}"}
            for index, item in enumerate(items)]


async def retrieve(request: web.Request, rid: str) -> web.Response:
    stored = await _owned(request)
    return json_response(stored.response)


async def input_items_of(request: web.Request, rid: str) -> web.Response:
    """GET /v1/responses/{id}/input_items: the input the response answered (newest
    first unless ?order=asc)."""
    stored = await _owned(request)
    items = _with_ids(stored.input)
    if request.query.get("order", "desc") != "asc":
        items = items[::-1]
    return json_response({"object": "list", "data": items, "has_more": False,
                          "first_id": items[0]["id"] if items else None,
                          "last_id": items[-1]["id"] if items else None})


async def delete(request: web.Request, rid: str) -> web.Response:
    stored = await _owned(request)
    response_id = request.match_info["response_id"]
    try:
        await request.app[GATEWAY].store.delete_response(response_id)
    except StoreError as exc:
        raise StoreUnreachable(f"The response cannot be deleted now: the store is "
                               f"unreachable ({exc})") from None
    return json_response({"id": stored.response.get("id", response_id), "object": "response",
                          "deleted": True})


async def _owned(request: web.Request) -> StoredResponse:
    response_id = request.match_info["response_id"]
    if len(response_id) > MAX_ID:
        raise NotFound("Response ids are at most 256 characters", param="response_id")
    stored = await _load(request.app[GATEWAY], response_id, owner_of(request[TENANT]))
    if stored is None:
        raise NotFound(f"Response with id '{response_id}' not found.", param="response_id")
    return stored

