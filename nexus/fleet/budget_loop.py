"""The leader's budget reconciliation: the month's status and breakdown, in one hash.

Every `reconcile_interval_seconds` the leader reads the month's spend and open
reservations, settles reservations whose replica died (counted as spent at their
estimate), and writes `{prefix}:budget:{month}` with its epoch, for operators and
`nexus budget`. A new month needs no rollover step: spend keys carry their month.
"""

from __future__ import annotations

import logging
import time

from nexus.budget.month import BudgetView, month_of, status_of
from nexus.budget.prices import micro_usd
from nexus.config.schema import Config
from nexus.fleet.leader import Leadership
from nexus.store.errors import store_errors
from nexus.store.redis_store import RedisStore

log = logging.getLogger(__name__)
DEFAULT_INTERVAL = 60.0
STATUS_TTL_SECONDS = 62 * 24 * 3600  # last month's summary stays readable for a while


class BudgetReconciliation:
    def __init__(self, config: Config, store: RedisStore, leadership: Leadership) -> None:
        self.budget = config.routing.budget
        self.store = store
        self.leadership = leadership
        self.interval = self.budget.reconcile_interval_seconds if self.budget \
            else DEFAULT_INTERVAL

    async def run_once(self) -> bool:
        """Reconcile if we lead; True when a summary was written."""
        if not self.leadership.leading:
            return False
        with store_errors():
            return await self._reconcile()

    async def _reconcile(self) -> bool:
        month = month_of()
        expired = await self.store.expire_reservations(month, self.leadership.epoch)
        if expired:
            log.warning("counted %d reservation(s) of dead replicas as spent at their estimate",
                        expired)
        breakdown = await self.store.breakdown(month)
        view = BudgetView(month=month, spent_micro_usd=breakdown.total_micro_usd,
                          reserved_micro_usd=breakdown.reserved_micro_usd)
        fields: dict[str, str | int | float] = {
            "month": month, "spent_micro_usd": breakdown.total_micro_usd,
            "reserved_micro_usd": breakdown.reserved_micro_usd,
            "updated_at": round(time.time(), 3), "leader": self.leadership.replica_id,
            "epoch": self.leadership.epoch}
        if self.budget is not None:
            fields["limit_micro_usd"] = micro_usd(self.budget.monthly_limit_usd)
            fields["status"] = status_of(view, self.budget).value
        return await self.leadership.fenced_hset(self.store.keys.budget_status(month), fields,
                                                 STATUS_TTL_SECONDS)
