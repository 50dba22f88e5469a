"""Strict budgets: hold a paid request's estimate before it is sent, let go if unserved.

Under `enforcement = "strict"` every request to a paid backend first reserves its
estimated cost in the store; the reservation is refused when spent + reserved +
estimate would pass the monthly limit. The actual cost settles it after the
response. A replica that dies leaves its reservations to expire; the leader then
counts them at their estimate, so nothing is under-counted.
"""

from __future__ import annotations

import logging

from nexus.budget import month_of
from nexus.config.schema import BudgetConfig
from nexus.errors import NexusError, NoViableBackend
from nexus.pipeline.types import Route
from nexus.pricing import micro_usd, usd
from nexus.store.base import Reservation, Store
from nexus.store.errors import StoreError

log = logging.getLogger(__name__)


class Holds:
    def __init__(self, store: Store, budget: BudgetConfig | None,
                 request_timeout_seconds: float) -> None:
        self.store = store
        self.budget = budget
        self.strict = budget is not None and budget.enforcement == "strict"
        # A live replica settles long before its hold expires: the margin is on top of
        # the longest a request may take.
        self.ttl = request_timeout_seconds + (budget.reservation_margin_seconds if budget else 0)
        self.fail_open = budget is not None and budget.when_stale == "fail_open"

    def applies(self, route: Route) -> bool:
        """Whether this route needs a hold: strict budgets, paid backends only."""
        return self.strict and not route.backend.free

    async def hold(self, route: Route, request_id: str) -> NexusError | None:
        """None when the request may go; otherwise why it may not."""
        assert self.budget is not None
        estimate = route.cost_estimate.cost_micro_usd
        reservation = Reservation(
            request_id=request_id, month=month_of(), backend=route.backend.name,
            model=route.model, estimate_micro_usd=estimate,
            limit_micro_usd=micro_usd(self.budget.monthly_limit_usd), ttl_seconds=self.ttl)
        try:
            if await self.store.reserve(reservation):
                return None
        except StoreError as exc:
            if self.fail_open:
                return None
            log.warning("strict budget: cannot reserve on the store (%s); paid backends are "
                        "closed (when_stale = fail_closed)", exc)
            return NoViableBackend(f"the budget store is unreachable; paid backend "
                                   f"{route.backend.name} is closed (when_stale = fail_closed)")
        return NoViableBackend(
            f"strict budget: reserving ${usd(estimate)} for {route.backend.name} would pass "
            f"the monthly limit of ${usd(reservation.limit_micro_usd)}",
            code="budget_exceeded")

    async def let_go(self, route: Route, request_id: str) -> None:
        """The request was not served by this backend: release its hold."""
        try:
            await self.store.release(request_id, month_of())
        except StoreError as exc:  # the leader will expire it; counted at the estimate
            log.warning("could not release reservation %s: %s", request_id, exc)
