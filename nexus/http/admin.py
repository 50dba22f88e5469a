"""The admin API: keys and teams, over HTTP, with the admin key only.

POST /admin/keys answers with the new key's secret, once; only its SHA-256 is kept.
Keys and teams made here live in the store (Redis for a fleet), so every replica
sees them, and a revocation, within one snapshot period.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import msgspec
from aiohttp import web

from nexus.core.errors import BadRequest, Conflict, NotFound
from nexus.http.context import GATEWAY, TENANCY
from nexus.replica import Gateway
from nexus.tenants.model import KeyRecord
from nexus.tenants.ops import (
    KeyCreate,
    TeamCreate,
    TenantError,
    created_key,
    key_view,
    new_key,
    new_team,
    team_view,
)
from nexus.tenants.table import counted_as


def _decode(body: bytes, kind: type[TeamCreate]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(str(exc).replace("`", "'")) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None


async def create_key(request: web.Request, rid: str) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    table = request.app[TENANCY].refresh()
    with _refusals():
        record, secret = new_key(_decode(await request.read(), KeyCreate), table.keys,
                                 table.teams)
    await gateway.store.save_key(record)
    return _json(created_key(record, secret), 201)


async def create_team(request: web.Request, rid: str) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    with _refusals():
        record = new_team(_decode(await request.read(), TeamCreate),
                          request.app[TENANCY].refresh().teams)
    await gateway.store.save_team(record)
    return _json({"name": record.name, "team": team_view(record)}, 201)


@contextmanager
def _refusals() -> Iterator[None]:
    try:
        yield
    except TenantError as exc:
        if exc.conflict:
            raise Conflict(str(exc), param=exc.param) from None
        raise BadRequest(str(exc), param=exc.param) from None


async def list_keys(request: web.Request, rid: str) -> web.Response:
    table = request.app[TENANCY].refresh()
    return _json({"data": [key_view(k) for _, k in sorted(table.keys.items())]})


async def list_teams(request: web.Request, rid: str) -> web.Response:
    table = request.app[TENANCY].refresh()
    return _json({"data": [team_view(t) for _, t in sorted(table.teams.items())]})


async def show_key(request: web.Request, rid: str) -> web.Response:
    return await _show(request, "key")


async def show_team(request: web.Request, rid: str) -> web.Response:
    return await _show(request, "team")


async def _show(request: web.Request, kind: str) -> web.Response:
    """Limits, this month's spend and this minute's usage of one key or team."""
    gateway: Gateway = request.app[GATEWAY]
    name = request.match_info["name"]
    table = request.app[TENANCY].refresh()
    key, team = table.keys.get(name), table.teams.get(name)
    view = key_view(key) if kind == "key" and key else \
        team_view(team) if kind == "team" and team else None
    if view is None:
        raise NotFound(f"no {kind} named {name!r}")
    return _json({**view, **await _usage(gateway, kind, name, key if kind == "key" else None)})


async def revoke_key(request: web.Request, rid: str) -> web.Response:
    return await _delete(request, "key")


async def delete_team(request: web.Request, rid: str) -> web.Response:
    return await _delete(request, "team")


async def _delete(request: web.Request, kind: str) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    name = request.match_info["name"]
    table = request.app[TENANCY].refresh()
    known = table.keys.get(name) if kind == "key" else table.teams.get(name)
    if known is None:
        raise NotFound(f"no {kind} named {name!r}")
    if name not in (gateway.store.tenant_records().keys if kind == "key"
                    else gateway.store.tenant_records().teams):
        raise Conflict(f"{kind} {name!r} is declared in the configuration or the environment; "
                       "remove it there")
    members = sorted(k.name for k in table.keys.values() if k.team == name)
    if kind == "team" and members:
        raise Conflict(f"team {name!r} still has keys: {', '.join(members)}; revoke them, or "
                       "make them again in another team, first", param="name")
    if kind == "key":
        await gateway.store.delete_key(name)
    else:
        await gateway.store.delete_team(name)
    return _json({"name": name, "deleted": True})


async def _usage(gateway: Gateway, kind: str, name: str,
                 key: KeyRecord | None) -> dict[str, Any]:
    spend = gateway.store.tenant_spend()
    requests, tokens = await gateway.store.rate_usage(
        counted_as(kind, name, key.team if key is not None else None))
    spent = (spend.spent_by_key if kind == "key" else spend.spent_by_team).get(name, 0)
    return {"month": spend.month or gateway.store.budget_view().month,
            "spent_micro_usd": spent, "used_micro_usd": spend.used(kind, name),
            "this_minute": {"requests": requests, "tokens": tokens}}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status,
                        content_type="application/json")


ADMIN_ROUTES = [
    ("POST", "/admin/keys", create_key), ("GET", "/admin/keys", list_keys),
    ("GET", "/admin/keys/{name}", show_key), ("DELETE", "/admin/keys/{name}", revoke_key),
    ("POST", "/admin/teams", create_team), ("GET", "/admin/teams", list_teams),
    ("GET", "/admin/teams/{name}", show_team), ("DELETE", "/admin/teams/{name}", delete_team),
]
