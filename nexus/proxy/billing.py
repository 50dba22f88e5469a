"""Billing: hold a paid request's estimate before it is sent, let go if unserved, and
what a served request cost, in integer micro-USD.

Under `enforcement = "strict"`, and for every tenant key or team with a monthly
budget, a request to a paid backend first reserves its estimated cost in the store;
the reservation is refused when spent + reserved + estimate would pass the fleet's
limit or the key's or team's budget (all are checked and held at once). The actual
cost settles it after the response. A replica that dies leaves its reservations to
expire; the leader then counts them at their estimate, so nothing is under-counted.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from nexus.budget.month import day_of, month_of
from nexus.budget.prices import micro_usd, usd
from nexus.budget.records import HELD, OVER_FLEET_BUDGET, Reservation, SpendRecord
from nexus.config.schema import BudgetConfig
from nexus.core.errors import InsufficientQuota, NexusError, NoViableBackend
from nexus.core.types import Usage
from nexus.routing.types import Route
from nexus.store.base import Reservations
from nexus.store.errors import StoreError
from nexus.tenants.model import Tenant, TenantSpend

log = logging.getLogger(__name__)


class Holds:
    def __init__(self, store: Reservations, budget: BudgetConfig | None,
                 request_timeout_seconds: float,
                 tenant_spend: Callable[[], TenantSpend] = TenantSpend) -> None:
        self.store = store
        self.tenant_spend = tenant_spend  # what each key and team used, as last seen
        self.budget = budget
        self.strict = budget is not None and budget.enforcement == "strict"
        # A live replica settles long before its hold expires: the margin is on top of
        # the longest a request may take.
        self.ttl = request_timeout_seconds + (budget.reservation_margin_seconds if budget
                                              else 60.0)
        self.fail_open = budget is not None and budget.when_stale == "fail_open"

    def applies(self, route: Route, tenant: Tenant | None = None) -> bool:
        """Whether this route needs a hold: a paid backend, and a strict fleet budget or
        a tenant with a budget."""
        return not route.backend.free and (self.strict or (tenant is not None
                                                           and tenant.budgeted))

    async def hold(self, route: Route, request_id: str,
                   tenant: Tenant | None = None) -> NexusError | None:
        """None when the request may go; otherwise why it may not."""
        reservation = self._reservation(route, request_id, tenant)
        try:
            refused = await self.store.hold(reservation)
        except StoreError as exc:
            return self._unreachable(route, tenant, exc)
        if refused == HELD:
            return None
        estimate = reservation.estimate_micro_usd
        if refused == OVER_FLEET_BUDGET:
            assert reservation.limit_micro_usd is not None
            return NoViableBackend(
                f"strict budget: reserving ${usd(estimate)} for {route.backend.name} would "
                f"pass the monthly limit of ${usd(reservation.limit_micro_usd)}",
                code="budget_exceeded")
        name = reservation.key if refused == "key" else reservation.team
        limit = reservation.key_limit_micro_usd if refused == "key" \
            else reservation.team_limit_micro_usd
        fits = self._what_fits(route, refused, name, limit)
        return InsufficientQuota(f"{refused} {name!r} is out of budget: reserving "
                                 f"${usd(estimate)} for {route.backend.name} would pass its "
                                 f"monthly_budget_usd; {fits}")

    def _what_fits(self, route: Route, kind: str, name: str, limit: int | None) -> str:
        """The max_tokens that would fit in what the budget has left (as last seen)."""
        left = max(0, (limit or 0) - self.tenant_spend().used(kind, name))
        price = route.backend.prices.price(route.model)
        prompt = -(-route.cost_estimate.input_tokens * price.input_nano // 1000)
        fits = (left - prompt) * 1000 // price.output_nano if price.output_nano else 0
        if fits < 1:
            return f"${usd(left)} is left this month, less than this prompt costs there"
        return f"${usd(left)} is left this month: send max_tokens of at most {fits} to fit it"

    def _reservation(self, route: Route, request_id: str,
                     tenant: Tenant | None) -> Reservation:
        key, team = (tenant.key, tenant.team) if tenant is not None else (None, None)
        return Reservation(
            request_id=request_id, month=month_of(), backend=route.backend.name,
            model=route.model, estimate_micro_usd=route.cost_estimate.cost_micro_usd,
            limit_micro_usd=micro_usd(self.budget.monthly_limit_usd)
            if self.strict and self.budget is not None else None,
            ttl_seconds=self.ttl, key=key.name if key else "",
            key_limit_micro_usd=_micro(key.monthly_budget_usd) if key else None,
            team=team.name if team else "",
            team_limit_micro_usd=_micro(team.monthly_budget_usd) if team else None)

    def _unreachable(self, route: Route, tenant: Tenant | None,
                     exc: StoreError) -> NexusError | None:
        """The store cannot be asked: each budget's when_stale decides (budgets default to
        fail_closed); any budget that fails closed closes the paid backend."""
        if self._fails_open(tenant):
            return None
        log.warning("cannot reserve on the store (%s); paid backend %s is closed "
                    "(when_stale = fail_closed)", exc, route.backend.name)
        return NoViableBackend(f"the budget store is unreachable; paid backend "
                               f"{route.backend.name} is closed (when_stale = fail_closed)",
                               retry_after=1)

    def _fails_open(self, tenant: Tenant | None) -> bool:
        stances = [] if not self.strict else ["fail_open" if self.fail_open else "fail_closed"]
        if tenant is not None:
            for limits in (tenant.key, tenant.team):
                if limits is not None and limits.monthly_budget_usd is not None:
                    stances.append(limits.when_stale or "fail_closed")
        return all(stance == "fail_open" for stance in stances)

    async def let_go(self, route: Route, request_id: str) -> None:
        """The request was not served by this backend: release its hold."""
        try:
            await self.store.release(request_id, month_of())
        except StoreError as exc:  # the leader will expire it; counted at the estimate
            log.warning("could not release reservation %s: %s", request_id, exc)


def _micro(usd_amount: float | None) -> int | None:
    return None if usd_amount is None else micro_usd(usd_amount)


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

