"""`nexus explain`: ask a running gateway how it would route a request, print each stage.

Exit status 0 when the request would be routed or queued, 1 when it would be refused
(the reasons are printed) or the gateway cannot be asked."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nexus.cli.remote import GatewayError, call, gateway_url


def explain_command(args: argparse.Namespace) -> int:
    url = gateway_url(args.config, args.url) + "/v1/routing/explain"
    headers = {"Content-Type": "application/json"}
    if args.privacy:
        headers["X-Nexus-Privacy"] = args.privacy
    if args.strict:
        headers["X-Nexus-Strict"] = "true"
    if args.flexible:
        headers["X-Nexus-Flexible"] = "true"
    try:
        data = call(url, args.api_key_env, _body(args), headers)
    except GatewayError as exc:
        print(f"nexus: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(data, indent=2) if args.json else render(data))
    return 1 if data["decision"]["type"] == "reject" else 0


def _body(args: argparse.Namespace) -> bytes:
    if args.body:
        with open(args.body, "rb") as handle:
            return handle.read()
    payload: dict[str, Any] = {"model": args.model,
                               "messages": [{"role": "user", "content": args.message}]}
    if args.max_tokens:
        payload["max_tokens"] = args.max_tokens
    return json.dumps(payload).encode()


def render(data: dict[str, Any]) -> str:
    lines = [f"request {data['request_id']} for model {data['model']!r}",
             f"decision: {_decision_line(data['decision'])}",
             f"outcome:  {data['outcome']}", ""]
    for stage in data["stages"]:
        lines.append(f"  [{stage['model']}] {stage['stage']:<20} "
                     f"{len(stage['before']):>3} -> {len(stage['after']):<3} "
                     f"{', '.join(stage['after']) or '(none left)'}")
        lines += [f"      - {r['backend']}: {r['reason']}  (hint: {r['suggestion']})"
                  for r in stage["rejected"]]
        lines += [f"      * {a['backend']}: score x{a['factor']} ({a['reason']})"
                  for a in stage["adjustments"]]
    if data["scores"]:
        lines += ["", f"  {'MODEL':<16} {'BACKEND':<18} {'SCORE':>8} {'PRIO':>6} {'FREE':>6} "
                      f"{'SPEED':>6} {'QUAL':>6} {'ADJ':>5}"]
        lines += [f"  {s['model']:<16} {s['backend']:<18} {s['score']:>8.4f} "
                  f"{s['priority']:>6.2f} {s['free_capacity']:>6.2f} {s['speed']:>6.2f} "
                  f"{s['quality']:>6.2f} {s['adjustment']:>5.2f}" for s in data["scores"]]
    return "\n".join(lines)


def _decision_line(decision: dict[str, Any]) -> str:
    kind = decision["type"]
    if kind == "route":
        return (f"route to {decision['backend']} ({decision['model']}), "
                f"est. ${decision['cost_estimated_usd']}, budget {decision['budget_status']}; "
                f"{decision['reason']}")
    if kind == "queue":
        fallback = decision["fallback"]
        then = f", then {fallback['backend']}" if fallback else ""
        return f"queue ~{decision['estimated_wait_ms']} ms{then}: {decision['reason']}"
    groups = decision["rejection_reasons"]
    if not groups:
        known = "" if decision.get("model_known", True) else "no backend serves this model; "
        return f"reject: {known}see the outcome below"
    return "reject: " + "; ".join(
        f"{g['stage']}: " + ", ".join(f"{r['backend']} ({r['reason']})" for r in g["reasons"])
        for g in groups) + f"\n  suggestion: {groups[0]['reasons'][0]['suggestion']}"
