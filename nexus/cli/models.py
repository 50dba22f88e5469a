"""`nexus models load|unload|migrate|ops`: model placement through a running gateway's
API (any replica), with the admin key from a variable named by --admin-key-env. Load,
unload and migrate follow their operation with a progress bar until it ends (unless
--no-wait), and exit 1 when it failed."""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
from typing import Any

from nexus.cli.inspect import table
from nexus.cli.remote import GatewayError, UsageError, admin_arguments, call, gateway_url

BAR = 30
POLL_SECONDS = 0.5


def add_actions(parser: argparse.ArgumentParser) -> None:
    """The placement commands under `nexus models` (which alone lists the models)."""
    actions = parser.add_subparsers(title="placement commands")
    load = _common(actions.add_parser("load", help="load a model on a backend"))
    load.add_argument("model")
    load.add_argument("--backend", required=True)
    load.add_argument("--path", help="a vLLM LoRA adapter's path (default: its name)")
    unload = _common(actions.add_parser("unload", help="unload a model from a backend"))
    unload.add_argument("model")
    unload.add_argument("--backend", required=True)
    migrate = _common(actions.add_parser("migrate", help="load on one backend, then "
                                                         "unload from another"))
    migrate.add_argument("model")
    migrate.add_argument("--from", dest="source", required=True)
    migrate.add_argument("--to", dest="target", required=True)
    ops = _common(actions.add_parser("ops", help="recent operations, or one (--id)"))
    ops.add_argument("--id", help="one operation: follow it until it ends")
    advice = _common(actions.add_parser("recommendations", help="the fleet's pre-warm "
                                                                "recommendations"))
    for action, command in ((load, "load"), (unload, "unload"), (migrate, "migrate"),
                            (ops, "ops"), (advice, "recommendations")):
        action.set_defaults(command=run, action=command)


def _common(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    admin_arguments(parser)
    parser.add_argument("--no-wait", action="store_true",
                        help="print the operation and return at once")
    return parser


def run(args: argparse.Namespace) -> int:
    try:
        base = gateway_url(args.config, args.url)
        if args.action == "recommendations":
            found = call(f"{base}/v1/fleet/recommendations", args.admin_key_env)
            print(json.dumps(found, indent=2) if args.json else _advice(found))
            return 0
        if args.action == "ops" and not args.id:
            listed = call(f"{base}/v1/models/operations", args.admin_key_env)["data"]
            print(json.dumps(listed, indent=2) if args.json else _table(listed))
            return 0
        operation = _start(args, base) if args.action != "ops" else \
            call(f"{base}/v1/models/operations/{urllib.parse.quote(args.id)}",
                 args.admin_key_env)
        if not args.no_wait:
            operation = _follow(args, base, operation)
    except GatewayError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    if args.json:
        print(json.dumps(operation, indent=2))
    elif args.no_wait:
        print(f"{operation['id']} {operation['state']}")
    return 1 if operation["state"] == "failed" else 0


def _start(args: argparse.Namespace, base: str) -> dict[str, Any]:
    key = args.admin_key_env
    if args.action == "load":
        body: dict[str, Any] = {"model": args.model, "backend": args.backend}
        if args.path:
            body["path"] = args.path
        return dict(call(f"{base}/v1/models/load", key, json.dumps(body).encode(),
                         {"Content-Type": "application/json"}))
    if args.action == "unload":
        query = urllib.parse.urlencode({"backend": args.backend})
        return dict(call(f"{base}/v1/models/{urllib.parse.quote(args.model, safe='')}"
                         f"?{query}", key, method="DELETE"))
    body = {"model": args.model, "from": args.source, "to": args.target}
    return dict(call(f"{base}/v1/models/migrate", key, json.dumps(body).encode(),
                     {"Content-Type": "application/json"}))


def _follow(args: argparse.Namespace, base: str, operation: dict[str, Any]) -> dict[str, Any]:
    """Poll the operation (from whichever replica --url names) until it ends, drawing a
    progress bar on a terminal and one line per state change elsewhere."""
    url = f"{base}/v1/models/operations/{urllib.parse.quote(operation['id'])}"
    shown = ""
    while True:
        line = _bar(operation)
        if line != shown and not args.json:
            end = "\r" if sys.stderr.isatty() and operation["state"] == "running" else "\n"
            print(line, end=end, file=sys.stderr, flush=True)
            shown = line
        if operation["state"] != "running":
            if operation["error"]:
                print(f"nexus: {operation['id']} failed: {operation['error']}",
                      file=sys.stderr)
            return operation
        time.sleep(POLL_SECONDS)
        operation = call(url, args.admin_key_env)


def _bar(operation: dict[str, Any]) -> str:
    where = operation.get("backend") or f"{operation.get('from')} -> {operation.get('to')}"
    progress = operation.get("progress")
    filled = round((progress or 0) * BAR)
    bar = "#" * filled + "-" * (BAR - filled)
    share = f"{progress:4.0%}" if progress is not None else "  ? "
    return (f"{operation['kind']} {operation['model']} on {where} [{bar}] {share} "
            f"{operation['state']}")


def _table(operations: list[dict[str, Any]]) -> str:
    rows = [[o["id"], o["kind"], o["model"],
             o.get("backend") or f"{o.get('from')}->{o.get('to')}", o["state"],
             "" if o.get("progress") is None else f"{o['progress']:.0%}",
             time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(o["started_at"])),
             o.get("error") or ""] for o in operations]
    return table(["ID", "KIND", "MODEL", "BACKEND", "STATE", "PROGRESS", "STARTED", "ERROR"],
                 rows)


def _advice(found: dict[str, Any]) -> str:
    rows = [[r["model"], ", ".join(r["backends"]), f"{r['confidence']:.0%}", r["signal"],
             time.strftime("%H:%M", time.localtime(r["expires_at"])), r["reasoning"]]
            for r in found["recommendations"]]
    if not rows:
        return f"no recommendations now (mode: {found['mode']})"
    return table(["MODEL", "LOAD ON", "CONFIDENCE", "SIGNAL", "UNTIL", "WHY"], rows)
