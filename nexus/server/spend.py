"""What a served request cost, in integer micro-USD."""

from __future__ import annotations

import time

from nexus.adapters.base import Usage
from nexus.budget import day_of, month_of
from nexus.pipeline.types import Route
from nexus.store.base import SpendRecord
from nexus.tenants.model import Tenant


def spend_record(request_id: str, route: Route, usage: Usage, estimated: bool = False,
                 reserved: bool = False, tenant: Tenant | None = None) -> SpendRecord:
    """What a paid backend's answer cost, from its usage (or the caller's estimate),
    attributed to the tenant's key and team."""
    price = route.backend.prices.price(route.model)
    key = tenant.key.name if tenant is not None else ""
    team = tenant.team.name if tenant is not None and tenant.team is not None else ""
    now = time.time()  # one moment for the month and the day, also at midnight
    return SpendRecord(request_id=request_id, month=month_of(now), day=day_of(now),
                       backend=route.backend.name,
                       model=route.model, estimated=estimated, reserved=reserved, key=key,
                       team=team,
                       cost_micro_usd=price.cost_of(usage))
