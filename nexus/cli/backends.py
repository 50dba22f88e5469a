"""`nexus backends add URL [--type auto]` and `nexus backends remove NAME`: backends added
to, or taken from, the running fleet through any replica's admin API. The fleet keeps
them in its store, so every replica serves them, and so does one that restarts."""

from __future__ import annotations

import argparse
import json
import sys
import typing
import urllib.parse
from typing import Any

from nexus.cli.remote import GatewayError, UsageError, admin_arguments, call, gateway_url
from nexus.config.schema import BackendType

TYPES = ["auto", *typing.get_args(BackendType)]


def add_actions(parser: argparse.ArgumentParser) -> None:
    """The commands under `nexus backends` (which alone lists the backends)."""
    actions = parser.add_subparsers(title="fleet commands")
    add = admin_arguments(actions.add_parser("add", help="add a backend to the running fleet"))
    add.add_argument("backend_url", metavar="URL")
    add.add_argument("--type", default="auto", choices=TYPES,
                     help="the server's type (default: auto, asked of the server)")
    add.add_argument("--name", help="default: from the URL's host and port")
    add.add_argument("--zone", choices=["open", "restricted"], default="open")
    add.add_argument("--tier", type=int, default=1)
    add.add_argument("--priority", type=int, default=50)
    add.add_argument("--vram-gb", type=float, metavar="GB",
                     help="GPU memory the server may fill (pre-warm keeps its headroom)")
    remove = admin_arguments(actions.add_parser(
        "remove", help="take a backend added at run time out of the fleet"))
    remove.add_argument("name")
    add.set_defaults(command=run, action="add")
    remove.set_defaults(command=run, action="remove")


def run(args: argparse.Namespace) -> int:
    try:
        base = gateway_url(args.config, args.url)
        if args.action == "add":
            body = {"url": args.backend_url, "type": args.type, "zone": args.zone,
                    "tier": args.tier, "priority": args.priority}
            if args.name:
                body["name"] = args.name
            if args.vram_gb is not None:
                body["vram_gb"] = args.vram_gb
            done: dict[str, Any] = call(f"{base}/v1/backends", args.admin_key_env,
                                        json.dumps(body).encode(),
                                        {"Content-Type": "application/json"})
        else:
            done = call(f"{base}/v1/backends/{urllib.parse.quote(args.name, safe='')}",
                        args.admin_key_env, method="DELETE")
    except GatewayError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    if args.json:
        print(json.dumps(done, indent=2))
    elif args.action == "add":
        models = ", ".join(done["models"]) or "none yet"
        print(f"added {done['name']} ({done['type']}, {done['url']}): {models}")
    else:
        print(f"removed {done['name']}")
    return 0
