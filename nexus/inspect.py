"""`nexus backends` / `nexus models`: ask a running gateway, print for people or scripts."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

from nexus.config.loader import load_config


def gateway_url(config_path: str | None, url: str | None) -> str:
    if url is None:
        server = load_config(config_path).server
        url = f"http://{server.host}:{server.port}"
    return url.rstrip("/")


def inspect(what: str, config_path: str | None, url: str | None, *, as_json: bool) -> int:
    url = gateway_url(config_path, url)
    path = "/v1/stats" if what == "backends" else "/v1/models"
    try:
        data = _get(url + path)
    except (urllib.error.URLError, OSError) as exc:
        print(f"nexus: cannot reach the gateway at {url}: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(data, indent=2))
    elif what == "backends":
        _print_backends(data["backends"])
    else:
        _print_models(data["data"])
    return 0


def _get(url: str) -> Any:
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _print_backends(backends: list[dict[str, Any]]) -> None:
    print(f"{'NAME':<18} {'TYPE':<10} {'ZONE':<11} {'STATE':<10} {'IN FLIGHT':>9}  MODELS")
    for b in backends:
        print(f"{b['name']:<18} {b['type']:<10} {b['zone']:<11} {b['state']:<10} "
              f"{b['in_flight']:>9}  {', '.join(b['models']) or '-'}")


def _print_models(models: list[dict[str, Any]]) -> None:
    for m in models:
        alias = f" (alias of {m['alias_of']})" if "alias_of" in m else ""
        print(f"{m['id']}{alias}  <- {', '.join(m['backends'])}")
