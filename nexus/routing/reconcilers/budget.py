"""BudgetReconciler: estimate each candidate's cost and apply the month's budget status."""

from __future__ import annotations

from collections.abc import Callable

from nexus.backends.backend import Backend
from nexus.budget.month import BudgetStatus, BudgetView, status_of
from nexus.budget.prices import usd
from nexus.config.schema import BudgetConfig
from nexus.routing.intent import RoutingIntent, Verdict
from nexus.routing.reconcilers.tenant_budget import drop_paid_when_out_of_budget
from nexus.routing.types import CostEstimate
from nexus.tenants.model import TenantSpend

STAGE = "BudgetReconciler"
DEFAULT_OUTPUT_TOKENS = 512   # the estimate when the request sets no max_tokens
SIZE_CACHE = 4096
# At the soft limit a free backend's score is multiplied by this: enough for a local
# backend to outrank paid ones, while local backends still compete on their own scores.
SOFT_LIMIT_LOCAL_BOOST = 1000.0
def token_tier(tokens: int) -> str:
    """The size class of a request, for pricing reports: small, medium, large, xlarge."""
    if tokens <= 1_000:
        return "small"
    if tokens <= 8_000:
        return "medium"
    return "large" if tokens <= 32_000 else "xlarge"


class BudgetReconciler:
    name = STAGE

    def __init__(self, config: BudgetConfig | None, view: Callable[[], BudgetView],
                 tenant_spend: Callable[[], TenantSpend] | None = None,
                 default_output_tokens: int = DEFAULT_OUTPUT_TOKENS) -> None:
        self.config = config
        self.default_output_tokens = default_output_tokens
        self.view = view
        self.tenant_spend = tenant_spend or TenantSpend
        self._last: tuple[BudgetView | None, BudgetStatus] = (None, BudgetStatus.NORMAL)
        self._sizes: dict[tuple[int, int], CostEstimate] = {}

    def reconcile(self, intent: RoutingIntent) -> None:
        self._estimate(intent)
        if self.config is not None:
            view = self.view()
            intent.budget_status = self._status(view, self.config)
            self._apply_status(intent, view)
        if intent.tenant is not None and intent.tenant.budgeted:
            drop_paid_when_out_of_budget(intent, self.tenant_spend(), STAGE)
        limit = intent.policy.max_cost_micro_usd
        costs = intent.costs
        if limit is not None and costs:  # free backends never pass a cost cap
            intent.keep(STAGE, [b for b in intent.candidates if costs.get(b.name, 0) <= limit],
                        lambda b: _over_cap(costs[b.name], limit))

    def _sized(self, tokens_in: int, tokens_out: int) -> CostEstimate:
        """The token part of an estimate (cost 0: the route fills its backend's in);
        requests repeat their sizes, so these are kept (a bounded number of them)."""
        key = (tokens_in, tokens_out)
        sized = self._sizes.get(key)
        if sized is None:
            if len(self._sizes) >= SIZE_CACHE:
                self._sizes.clear()
            sized = self._sizes[key] = CostEstimate(
                input_tokens=tokens_in, output_tokens=tokens_out,
                token_tier=token_tier(tokens_in + tokens_out))
        return sized

    def _status(self, view: BudgetView, config: BudgetConfig) -> BudgetStatus:
        """The status of a view, worked out once per view (stores hand out the same
        view object until the spend changes)."""
        last_view, last_status = self._last
        if view is not last_view:
            last_status = status_of(view, config)
            self._last = (view, last_status)
        return last_status

    def _estimate(self, intent: RoutingIntent) -> None:
        needs = intent.requirements
        output = needs.max_output_tokens or self.default_output_tokens
        intent.cost_estimate = self._sized(needs.input_tokens, output)
        model, tokens_in = intent.resolved_model, needs.input_tokens
        intent.costs = {b.name: b.prices.price(model).cost_micro_usd(tokens_in, output)
                        for b in intent.candidates if not b.free}

    def _apply_status(self, intent: RoutingIntent, view: BudgetView) -> None:
        assert self.config is not None
        status, action = intent.budget_status, self.config.hard_limit_action
        stale_closed = view.stale and self._when_stale() == "fail_closed"
        if status is BudgetStatus.SOFT_LIMIT:
            for backend in intent.candidates:
                if intent.costs.get(backend.name, 0) == 0:
                    intent.adjust(backend, STAGE, SOFT_LIMIT_LOCAL_BOOST,
                                  "budget soft limit: local backends preferred")
        if status is BudgetStatus.HARD_LIMIT and action == "warn":
            intent.warnings["X-Nexus-Budget-Warning"] = \
                "monthly budget hard limit reached (hard_limit_action = warn)"
        elif status is BudgetStatus.HARD_LIMIT and action == "block_all":
            intent.narrow(STAGE, lambda b: _blocked_all())
        elif status is BudgetStatus.HARD_LIMIT or stale_closed:
            why = "budget view is stale (when_stale = fail_closed)" if stale_closed and \
                status is not BudgetStatus.HARD_LIMIT else "monthly budget hard limit reached"
            intent.narrow(STAGE, lambda b: _paid(b, intent.costs.get(b.name, 0), why))

    def _when_stale(self) -> str:
        assert self.config is not None
        default = "fail_closed" if self.config.enforcement == "strict" else "fail_open"
        return self.config.when_stale or default


def _paid(backend: Backend, cost: int, why: str) -> Verdict:
    if cost == 0:
        return None
    return (f"{why}; estimated cost ${usd(cost)}",
            "use a model served by a local backend, or raise routing.budget.monthly_limit_usd")


def _blocked_all() -> Verdict:
    return ("monthly budget hard limit reached (hard_limit_action = block_all)",
            "raise routing.budget.monthly_limit_usd or wait for the next month")


def _over_cap(cost: int, limit: int) -> tuple[str, str]:
    return (f"estimated cost ${usd(cost)} exceeds the policy's max_cost_per_request "
            f"${usd(limit)}", "lower max_tokens, or use a cheaper model")
