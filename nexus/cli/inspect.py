"""`nexus backends` / `nexus models` / `nexus budget --url`: ask a running gateway, print
for people or scripts."""

from __future__ import annotations

import json
import sys
from typing import Any

from nexus.cli.remote import GatewayError, call, gateway_url


def inspect(what: str, config_path: str | None, url: str | None, key_env: str, *,
            as_json: bool) -> int:
    base = gateway_url(config_path, url)
    path = {"backends": "/v1/stats", "models": "/v1/models"}[what]
    try:
        data = call(base + path, key_env)
    except GatewayError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(data, indent=2))
    elif what == "backends":
        print(table(["NAME", "TYPE", "ZONE", "STATE", "IN FLIGHT", "QUEUE", "KV", "HITS",
                     "CONTEXT", "MODELS"],
                    [_backend_row(b) for b in data["backends"]], right={4, 5, 6, 7}))
        rate = data.get("prefix_cache_hit_rate")
        if rate is not None:
            print(f"fleet prefix-cache hit rate: {rate:.0%}")
    else:
        print(table(["MODEL", "CONTEXT", "ALIAS OF", "BACKENDS"],
                    [[m["id"], _context(m.get("context_window")), m.get("alias_of", "-"),
                      ", ".join(m["backends"])] for m in data["data"]]))
    return 0


def _backend_row(b: dict[str, Any]) -> list[str]:
    windows = b.get("context_windows") or {}
    context = ", ".join(sorted({f"{w['tokens']} ({w['source']})" for w in windows.values()}))
    return [b["name"], b["type"], b["zone"], b["state"], str(b["in_flight"]),
            *engine_cells(b.get("engine")), context or "-", ", ".join(b["models"]) or "-"]


def engine_cells(engine: dict[str, Any] | None) -> list[str]:
    """The server's own queue (running+waiting/slots), KV use and cache hits: "-" when it
    reports none, or its reading is stale."""
    if not engine or not engine["fresh"]:
        return ["-", "-", "-"]
    slots = f"/{engine['slots']}" if engine["slots"] else ""
    kv, hits = engine["kv_usage"], engine["prefix_cache_hit_rate"]
    return [f"{engine['running']}+{engine['waiting']}{slots}",
            "-" if kv is None else f"{kv:.0%}", "-" if hits is None else f"{hits:.0%}"]


def _context(window: dict[str, Any] | None) -> str:
    return f"{window['tokens']} ({window['source']})" if window else "-"


def table(header: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    """Columns as wide as their widest cell; the last one is left ragged."""
    right = right or set()
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    lines = []
    for row in [header, *rows]:
        cells = [str(cell).rjust(widths[i]) if i in right else str(cell).ljust(widths[i])
                 for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)
