"""`nexus budget` for one replica without Redis: its own budget, asked over HTTP."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.parse

from nexus.budget.report import print_budget
from nexus.cli.remote import GatewayError, call, gateway_url


def gateway_budget(args: argparse.Namespace) -> int:
    url = gateway_url(args.config, args.url) + "/v1/budget"
    if args.month:
        url += "?" + urllib.parse.urlencode({"month": args.month})
    try:
        data = call(url, args.api_key_env)
    except GatewayError as exc:
        alone = "" if args.url else ("no [redis] configured, so this asks the replica itself "
                                     "for its in-process budget (--url to name it): ")
        print(f"nexus: {alone}{exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print_budget(data, args.by)
    return 0
