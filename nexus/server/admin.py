"""The admin API: keys and teams, over HTTP, with the admin key only.

POST /admin/keys answers with the new key's secret, once; only its SHA-256 is kept.
Keys and teams made here live in the store (Redis for a fleet), so every replica
sees them, and a revocation, within one snapshot period.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta

from nexus.errors import BadRequest, NexusError, NotFound
from nexus.server.gateway import Gateway
from nexus.server.handlers import GATEWAY
from nexus.tenants.model import KeyRecord, Privacy, TeamRecord, WhenStale, new_secret, sha256_of
from nexus.tenants.table import expires_at

Name = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._:@+-]{1,64}$")]
Day = Annotated[str, Meta(pattern=r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$")]
Count = Annotated[int, Meta(ge=1)]
Usd = Annotated[float, Meta(ge=0)]


class Conflict(NexusError):
    status, type, code = 409, "invalid_request_error", "conflict"


class TeamCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Name
    monthly_budget_usd: Usd | None = None
    rpm: Count | None = None
    tpm: Count | None = None
    when_stale: WhenStale | None = None
    metadata: dict[str, str] = msgspec.field(default_factory=dict)


class KeyCreate(TeamCreate, forbid_unknown_fields=True, kw_only=True):
    team: Name | None = None
    models: list[str] = msgspec.field(default_factory=list)
    privacy: Privacy = "unrestricted"
    expires_at: Day | None = None


def _decode(body: bytes, kind: type[TeamCreate]) -> Any:
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise BadRequest(str(exc).replace("`", "'")) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON: {exc}") from None


async def create_key(request: web.Request, rid: str) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    asked: KeyCreate = _decode(await request.read(), KeyCreate)
    table = gateway.tenancy.refresh()
    if asked.name in table.keys:
        raise Conflict(f"a key named {asked.name!r} exists; revoke it first", param="name")
    if asked.team is not None and asked.team not in table.teams:
        raise BadRequest(f"no team named {asked.team!r}", param="team")
    secret = new_secret()
    record = KeyRecord(name=asked.name, secret_sha256=sha256_of(secret), team=asked.team,
                       models=asked.models, privacy=asked.privacy,
                       expires_at=expires_at(asked.expires_at),
                       monthly_budget_usd=asked.monthly_budget_usd, rpm=asked.rpm,
                       tpm=asked.tpm, when_stale=asked.when_stale, metadata=asked.metadata,
                       created_at=time.time())
    await gateway.store.save_key(record)
    return _json({"name": record.name, "secret": secret, "key": _key_view(record)}, 201)


async def create_team(request: web.Request, rid: str) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    asked: TeamCreate = _decode(await request.read(), TeamCreate)
    if asked.name in gateway.tenancy.refresh().teams:
        raise Conflict(f"a team named {asked.name!r} exists", param="name")
    record = TeamRecord(name=asked.name, monthly_budget_usd=asked.monthly_budget_usd,
                        rpm=asked.rpm, tpm=asked.tpm, when_stale=asked.when_stale,
                        metadata=asked.metadata, created_at=time.time())
    await gateway.store.save_team(record)
    return _json({"name": record.name, "team": _limits_view(record)}, 201)


async def list_keys(request: web.Request, rid: str) -> web.Response:
    table = request.app[GATEWAY].tenancy.refresh()
    return _json({"data": [_key_view(k) for _, k in sorted(table.keys.items())]})


async def list_teams(request: web.Request, rid: str) -> web.Response:
    table = request.app[GATEWAY].tenancy.refresh()
    return _json({"data": [{"name": n, **_limits_view(t)} for n, t in sorted(table.teams.items())]})


async def show_key(request: web.Request, rid: str) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    key = gateway.tenancy.refresh().keys.get(request.match_info["name"])
    if key is None:
        raise NotFound(f"no key named {request.match_info['name']!r}")
    return _json({**_key_view(key), **await _usage(gateway, "key", key.name)})


async def show_team(request: web.Request, rid: str) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    team = gateway.tenancy.refresh().teams.get(request.match_info["name"])
    if team is None:
        raise NotFound(f"no team named {request.match_info['name']!r}")
    return _json({"name": team.name, **_limits_view(team),
                  **await _usage(gateway, "team", team.name)})


async def revoke_key(request: web.Request, rid: str) -> web.Response:
    return await _delete(request, "key")


async def delete_team(request: web.Request, rid: str) -> web.Response:
    return await _delete(request, "team")


async def _delete(request: web.Request, kind: str) -> web.Response:
    gateway: Gateway = request.app[GATEWAY]
    name = request.match_info["name"]
    table = gateway.tenancy.refresh()
    known = table.keys.get(name) if kind == "key" else table.teams.get(name)
    if known is None:
        raise NotFound(f"no {kind} named {name!r}")
    if name not in (gateway.store.tenant_records().keys if kind == "key"
                    else gateway.store.tenant_records().teams):
        raise Conflict(f"{kind} {name!r} is declared in the configuration or the environment; "
                       "remove it there")
    if kind == "key":
        await gateway.store.delete_key(name)
    else:
        await gateway.store.delete_team(name)
    return _json({"name": name, "deleted": True})


async def _usage(gateway: Gateway, kind: str, name: str) -> dict[str, Any]:
    spend = gateway.store.tenant_spend()
    requests, tokens = await gateway.store.rate_usage(f"{kind}:{name}")
    spent = (spend.spent_by_key if kind == "key" else spend.spent_by_team).get(name, 0)
    return {"month": spend.month or gateway.store.budget_view().month,
            "spent_micro_usd": spent, "used_micro_usd": spend.used(kind, name),
            "this_minute": {"requests": requests, "tokens": tokens}}


def _limits_view(record: KeyRecord | TeamRecord) -> dict[str, Any]:
    return {"monthly_budget_usd": record.monthly_budget_usd, "rpm": record.rpm,
            "tpm": record.tpm, "when_stale": record.when_stale, "metadata": record.metadata,
            "created_at": record.created_at or None}


def _key_view(key: KeyRecord) -> dict[str, Any]:
    """A key as shown to operators: never its secret, nor its hash."""
    expiry = time.strftime("%Y-%m-%d", time.gmtime(key.expires_at)) if key.expires_at else None
    return {"name": key.name, "team": key.team, "models": key.models, "privacy": key.privacy,
            "expires_at": expiry, "expired": key.expired(), "source": key.source,
            **_limits_view(key)}


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=msgspec.json.encode(data), status=status,
                        content_type="application/json")


ADMIN_ROUTES = [
    ("POST", "/admin/keys", create_key), ("GET", "/admin/keys", list_keys),
    ("GET", "/admin/keys/{name}", show_key), ("DELETE", "/admin/keys/{name}", revoke_key),
    ("POST", "/admin/teams", create_team), ("GET", "/admin/teams", list_teams),
    ("GET", "/admin/teams/{name}", show_team), ("DELETE", "/admin/teams/{name}", delete_team),
]
