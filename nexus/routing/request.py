"""What the router is asked; it answers with a `Route` from the pipeline's vocabulary."""

from __future__ import annotations

from typing import Any

import msgspec

from nexus.core.types import NO_FLAGS, Endpoint, RequestFlags, Requirements
from nexus.routing.affinity import AffinityKey
from nexus.routing.types import Route
from nexus.tenants.model import Tenant

__all__ = ["Endpoint", "RequestFlags", "Route", "RoutingRequest"]


class RoutingRequest(msgspec.Struct, kw_only=True):
    model: str
    endpoint: Endpoint = "chat"
    excluded: frozenset[str] = frozenset()  # backends this request already failed on
    attempt: int = 0                        # 0 for the first try, n for the n-th retry
    payload: dict[str, Any] | None = None   # the decoded body: requirements come from it
    requirements: Requirements | None = None  # or, already read, these
    flags: RequestFlags = NO_FLAGS
    request_id: str = ""
    tenant: Tenant | None = None            # who sent it: their budgets narrow the route
    affinity: AffinityKey | None = None     # the conversation's key (session or prefix)
