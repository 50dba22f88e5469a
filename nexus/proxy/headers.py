"""The X-Nexus-* headers every routed response carries."""

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
        "X-Nexus-Model": route.model,
        "X-Nexus-Route-Reason": route.reason,
        "X-Nexus-Privacy-Zone": backend.config.zone,
        "X-Nexus-Cost-Estimated": usd(route.cost_estimate.cost_micro_usd),
        "X-Nexus-Budget-Status": _STATUS_TEXT[route.budget_status],
        "X-Nexus-Request-Id": request_id,
    }
    if route.fallback_model:
        headers["X-Nexus-Fallback-Model"] = route.fallback_model
    headers.update(route.warnings)  # X-Nexus-Tier-Warning, X-Nexus-Budget-Warning
    return headers
