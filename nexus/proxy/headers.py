"""The X-Nexus-* headers every routed response carries.

Some of their values come from outside: a model name a backend reported, the names of
the parameters a client sent. Each such value passes `header_value`, so no upstream or
client can split a response or make it unsendable.
"""

from __future__ import annotations

from nexus.budget.month import BudgetStatus
from nexus.budget.prices import usd
from nexus.routing.types import Route

# Read per response: a dict lookup, not Enum's `.value` property (Python code).
_STATUS_TEXT = {status: status.value for status in BudgetStatus}


def route_headers(route: Route, request_id: str) -> dict[str, str]:
    backend = route.backend
    headers = {
        "X-Nexus-Backend": backend.name,
        "X-Nexus-Backend-Type": "cloud" if backend.is_cloud else "local",
        "X-Nexus-Model": header_value(route.model),
        "X-Nexus-Route-Reason": header_value(route.reason),
        "X-Nexus-Privacy-Zone": backend.config.zone,
        "X-Nexus-Cost-Estimated": usd(route.cost_estimate.cost_micro_usd),
        "X-Nexus-Budget-Status": _STATUS_TEXT[route.budget_status],
        "X-Nexus-Request-Id": request_id,
    }
    if route.fallback_model:
        headers["X-Nexus-Fallback-Model"] = header_value(route.fallback_model)
    for name, text in route.warnings.items():  # X-Nexus-Tier-Warning, -Budget-Warning
        headers[name] = header_value(text)
    return headers


def sendable(value: str) -> bool:
    """Whether a header value can go on the wire as it is: Latin-1, no control character
    but tab (a CR or LF would split the request, a NUL is refused by servers)."""
    if value.isascii() and value.isprintable():
        return True
    return all(c == "\t" or (c.isprintable() and ord(c) < 0x100) for c in value)


def header_value(text: str) -> str:
    """`text` as a header may carry it: printable ASCII as it is (the common case, tested
    in C), anything else (CR, LF, NUL, other controls, non-ASCII, bidi overrides)
    escaped as \\xHH or \\uHHHH."""
    if text.isascii() and text.isprintable():
        return text
    return "".join(c if c.isascii() and c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
