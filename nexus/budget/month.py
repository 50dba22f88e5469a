"""The month's budget as routing sees it: a snapshot, and the status it implies."""

from __future__ import annotations

import enum
import functools
import time

import msgspec

from nexus.budget.prices import micro_usd
from nexus.config.schema import BudgetConfig


class BudgetStatus(enum.Enum):
    NORMAL = "normal"
    SOFT_LIMIT = "soft_limit"
    HARD_LIMIT = "hard_limit"

    __hash__ = object.__hash__  # singletons: identity hash, in C, not Enum's Python one


class BudgetView(msgspec.Struct, frozen=True, kw_only=True):
    month: str
    spent_micro_usd: int = 0
    reserved_micro_usd: int = 0
    stale: bool = False


def month_of(unix_time: float | None = None) -> str:
    """The budget month (UTC) as "YYYY-MM"; computed once per hour, as it is asked often."""
    hour = int((time.time() if unix_time is None else unix_time) // 3600)
    return _month_of_hour(hour)


@functools.lru_cache(maxsize=64)
def _month_of_hour(hour: int) -> str:
    return time.strftime("%Y-%m", time.gmtime(hour * 3600))


def day_of(unix_time: float | None = None) -> str:
    """The day (UTC) as "YYYY-MM-DD", the key of the month's spend by day."""
    hour = int((time.time() if unix_time is None else unix_time) // 3600)
    return _day_of_hour(hour)


@functools.lru_cache(maxsize=64)
def _day_of_hour(hour: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(hour * 3600))


def status_of(view: BudgetView, config: BudgetConfig) -> BudgetStatus:
    limit = micro_usd(config.monthly_limit_usd)
    used = view.spent_micro_usd + view.reserved_micro_usd
    if used >= limit:
        return BudgetStatus.HARD_LIMIT
    if used * 100 >= limit * config.soft_limit_percent:
        return BudgetStatus.SOFT_LIMIT
    return BudgetStatus.NORMAL
