"""`nexus keys` and `nexus teams`: against the fleet's Redis (`--config`) or a running
gateway's admin API (`--url`, with the admin key). A key's secret is printed once,
by `create`; nothing else ever shows it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, Protocol

import msgspec

from nexus.budget.prices import usd
from nexus.cli.inspect import table
from nexus.cli.remote import ADMIN_KEY_ENV, GatewayError, UsageError, call, gateway_url
from nexus.config.loader import load_config
from nexus.store.errors import StoreError
from nexus.store.redis_store import RedisStore
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


class Access(Protocol):
    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]: ...
    def list(self, kind: str) -> list[dict[str, Any]]: ...
    def show(self, kind: str, name: str) -> dict[str, Any]: ...
    def delete(self, kind: str, name: str) -> dict[str, Any]: ...


class AdminApi:
    def __init__(self, url: str, key_env: str) -> None:
        self.url, self.key_env = url, key_env

    def _call(self, path: str, body: dict[str, Any] | None = None,
              method: str | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        return call(self.url + path, self.key_env, data,
                    {"Content-Type": "application/json"}, method)

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        answer: dict[str, Any] = self._call(f"/admin/{kind}s", body)
        return answer

    def list(self, kind: str) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = self._call(f"/admin/{kind}s")["data"]
        return listed

    def show(self, kind: str, name: str) -> dict[str, Any]:
        shown: dict[str, Any] = self._call(f"/admin/{kind}s/{name}")
        return shown

    def delete(self, kind: str, name: str) -> dict[str, Any]:
        done: dict[str, Any] = self._call(f"/admin/{kind}s/{name}", method="DELETE")
        return done


class RedisAccess:
    """The store's records directly: what the admin API would write, without a gateway."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store

    def _run(self, work: Any) -> Any:
        async def run() -> Any:
            try:
                await self.store.tenants.reload()
                return await work()
            finally:
                await self.store.client.aclose()
        try:
            return asyncio.run(run())
        except StoreError as exc:
            raise GatewayError(f"cannot use Redis: {exc}") from None

    def create(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            records = self.store.tenant_records()
            if kind == "team":
                team = new_team(msgspec.convert(body, TeamCreate), records.teams)
                await self.store.save_team(team)
                return {"name": team.name, "team": team_view(team)}
            record, secret = new_key(msgspec.convert(body, KeyCreate), records.keys,
                                     records.teams)
            await self.store.save_key(record)
            return created_key(record, secret)
        try:
            result: dict[str, Any] = self._run(work)
        except (TenantError, msgspec.ValidationError) as exc:
            raise GatewayError(str(exc)) from None
        return result

    def list(self, kind: str) -> list[dict[str, Any]]:
        async def work() -> list[dict[str, Any]]:
            records = self.store.tenant_records()
            if kind == "team":
                return [team_view(t) for _, t in sorted(records.teams.items())]
            return [key_view(k) for _, k in sorted(records.keys.items())]
        listed: list[dict[str, Any]] = self._run(work)
        return listed

    def show(self, kind: str, name: str) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            records = self.store.tenant_records()
            found = records.keys.get(name) if kind == "key" else records.teams.get(name)
            if found is None:
                raise GatewayError(f"no {kind} named {name!r} in Redis")
            view = key_view(found) if kind == "key" else team_view(found)  # type: ignore[arg-type]
            spend = await self.store.breakdown(self.store.budget_view().month)
            requests, tokens = await self.store.rate_usage(
                counted_as(kind, name, getattr(found, "team", None)))
            spent = (spend.by_key if kind == "key" else spend.by_team).get(name, 0)
            return {**view, "month": spend.month, "spent_micro_usd": spent,
                    "this_minute": {"requests": requests, "tokens": tokens}}
        shown: dict[str, Any] = self._run(work)
        return shown

    def delete(self, kind: str, name: str) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            deleted = await (self.store.delete_key(name) if kind == "key"
                             else self.store.delete_team(name))
            if not deleted:
                raise GatewayError(f"no {kind} named {name!r} in Redis")
            return {"name": name, "deleted": True}
        done: dict[str, Any] = self._run(work)
        return done


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for kind in ("key", "team"):
        parser = sub.add_parser(f"{kind}s", help=f"tenant {kind}s: create, list, show"
                                + (", revoke" if kind == "key" else ", delete"))
        actions = parser.add_subparsers(title=f"{kind} commands", required=True)
        create = _common(actions.add_parser("create", help=f"make a {kind}"
                                            + (" and print its secret, once" if kind == "key"
                                               else "")))
        create.add_argument("name")
        _limits(create, kind)
        create.set_defaults(command=run, kind=kind, action="create")
        _common(actions.add_parser("list")).set_defaults(command=run, kind=kind, action="list")
        show = _common(actions.add_parser("show", help="limits, this month's spend, usage "
                                                       "in the current minute"))
        show.add_argument("name")
        show.set_defaults(command=run, kind=kind, action="show")
        drop = _common(actions.add_parser("revoke" if kind == "key" else "delete"))
        drop.add_argument("name")
        drop.set_defaults(command=run, kind=kind, action="delete")


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--config", help="TOML file with [redis] (the fleet's store)")
    parser.add_argument("--url", help="a running gateway: use its admin API instead")
    parser.add_argument("--admin-key-env", default=ADMIN_KEY_ENV, metavar="NAME",
                        help=f"variable holding the admin key, with --url (default "
                             f"{ADMIN_KEY_ENV})")
    parser.add_argument("--json", action="store_true")
    return parser


def _limits(parser: argparse.ArgumentParser, kind: str) -> None:
    parser.add_argument("--budget-usd", type=_non_negative, help="monthly budget in USD")
    parser.add_argument("--rpm", type=_positive, help="requests per minute, fleet-wide")
    parser.add_argument("--tpm", type=_positive, help="tokens per minute, fleet-wide")
    parser.add_argument("--when-stale", choices=["fail_open", "fail_closed"])
    if kind == "key":
        parser.add_argument("--team")
        parser.add_argument("--models", help="comma-separated globs the key may use")
        parser.add_argument("--privacy", choices=["restricted", "unrestricted"])
        parser.add_argument("--expires", metavar="YYYY-MM-DD",
                            help="the key stops working at 00:00 UTC that day")


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return value


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number of at least 0, not {text!r}")
    return value


def _body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"name": args.name}
    for option, field in (("budget_usd", "monthly_budget_usd"), ("rpm", "rpm"),
                          ("tpm", "tpm"), ("when_stale", "when_stale"), ("team", "team"),
                          ("privacy", "privacy"), ("expires", "expires_at")):
        value = getattr(args, option, None)
        if value is not None:
            body[field] = value
    if getattr(args, "models", None):
        body["models"] = [m.strip() for m in args.models.split(",") if m.strip()]
    return body


def _access(args: argparse.Namespace) -> Access:
    if args.url:
        return AdminApi(gateway_url(None, args.url), args.admin_key_env)
    config = load_config(args.config)
    if config.redis is None:
        raise UsageError("no [redis] in the config: name a running gateway with --url "
                         f"(and its admin key in {args.admin_key_env})")
    return RedisAccess(RedisStore(config.redis))


def run(args: argparse.Namespace) -> int:
    try:
        access = _access(args)
        if args.action == "create":
            result: Any = access.create(args.kind, _body(args))
        elif args.action == "list":
            result = access.list(args.kind)
        elif args.action == "show":
            result = access.show(args.kind, args.name)
        else:
            result = access.delete(args.kind, args.name)
    except GatewayError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    _print(args, result)
    return 0


def _print(args: argparse.Namespace, result: Any) -> None:
    if args.json:
        shown = {"name": result["name"], "secret": result["secret"]} \
            if args.action == "create" and args.kind == "key" else result
        print(json.dumps(shown, indent=2))
    elif args.action == "create" and args.kind == "key":
        print(f"created key {result['name']}; its secret, shown this once:\n{result['secret']}")
        if result.get("warning"):
            print(f"nexus: warning: {result['warning']}", file=sys.stderr)
    elif args.action == "list":
        print(table(["NAME", "TEAM", "BUDGET", "RPM", "TPM", "PRIVACY"] if args.kind == "key"
                    else ["NAME", "BUDGET", "RPM", "TPM"], [_row(args.kind, r) for r in result]))
    elif args.action == "show":
        spent = result.get("spent_micro_usd", 0)
        minute = result.get("this_minute", {})
        print(table(["FIELD", "VALUE"], [[k.replace("_", " "), _readable(v)]
                                          for k, v in result.items()
                                          if k not in ("this_minute", "spent_micro_usd")]))
        print(f"spent this month ${usd(spent)}; this minute {minute.get('requests', 0)} "
              f"requests, {minute.get('tokens', 0)} tokens")
    else:
        print(f"{args.kind} {result['name']}: done")


def _readable(value: Any) -> str:
    """A field as a person reads it: no Python reprs, no epoch floats."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def _row(kind: str, view: dict[str, Any]) -> list[str]:
    budget = "-" if view["monthly_budget_usd"] is None else f"${view['monthly_budget_usd']:g}"
    limits = [budget, str(view["rpm"] or "-"), str(view["tpm"] or "-")]
    if kind == "key":
        return [view["name"], view["team"] or "-", *limits, view["privacy"]]
    return [view["name"], *limits]
