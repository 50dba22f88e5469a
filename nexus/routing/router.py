"""`Router.select_backend` is the one routing entry point; the pipeline decides inside it.

The router's own job is the fallback chain: it runs the pipeline once for the
requested model and once per fallback model, until one of them can route.
"""

from __future__ import annotations

import functools
import math
import random
import time
from collections.abc import Callable, Sequence

import msgspec

from nexus.backends.registry import Registry
from nexus.budget.month import BudgetView, month_of
from nexus.config.schema import HealthCheckConfig, QualityConfig, QueueConfig, RoutingConfig
from nexus.core.errors import (
    ContextLengthExceeded,
    InsufficientQuota,
    ModelNotFound,
    NoViableBackend,
)
from nexus.routing.affinity import Affinity, AffinityKey
from nexus.routing.aliases import resolve
from nexus.routing.intent import RoutingIntent
from nexus.routing.pipeline import Pipeline, Reconciler, StageEffect
from nexus.routing.policies import PolicySet
from nexus.routing.reconcilers.analyzer import RequestAnalyzer
from nexus.routing.reconcilers.budget import BudgetReconciler
from nexus.routing.reconcilers.lifecycle import STAGE as LIFECYCLE
from nexus.routing.reconcilers.lifecycle import LifecycleReconciler, soonest_ready
from nexus.routing.reconcilers.privacy import PrivacyReconciler
from nexus.routing.reconcilers.quality import QualityReconciler
from nexus.routing.reconcilers.scheduler import SchedulerReconciler, bring_back
from nexus.routing.reconcilers.tier import TierReconciler
from nexus.routing.rejection import no_viable_backend, waiting_helps
from nexus.routing.request import RoutingRequest
from nexus.routing.scoring import ScoreParts, Scorer, cold_reason
from nexus.routing.strategies import Strategies
from nexus.routing.types import Queue, Reject, RejectionReason, Route, RoutingDecision
from nexus.tenants.model import TenantSpend

CHAIN_CACHE_SIZE = 4096
MAX_RETRY_AFTER = 300  # seconds: a hint to retry, not a promise


class ScoreRow(msgspec.Struct):
    model: str
    backend: str
    parts: ScoreParts
    cold: str | None = None  # why it scores lower: the model loads there first


class Trace(msgspec.Struct):
    """What `explain` shows: each stage's effect and the scheduler's score table."""

    effects: list[StageEffect] = msgspec.field(default_factory=list)
    scores: list[ScoreRow] = msgspec.field(default_factory=list)


class QueueRequired(NoViableBackend):
    """Every candidate is busy or loading: the caller may wait `retry_after` seconds."""

    def __init__(self, message: str, queue: Queue) -> None:
        super().__init__(message, retry_after=max(1, math.ceil(queue.estimated_wait_ms / 1000)))
        self.queue = queue


class Router:
    def __init__(self, config: RoutingConfig, registry: Registry,
                 rng: random.Random | None = None, *,
                 quality: QualityConfig | None = None, queue: QueueConfig | None = None,
                 budget_view: Callable[[], BudgetView] | None = None,
                 tenant_spend: Callable[[], TenantSpend] | None = None,
                 health: HealthCheckConfig | None = None,
                 extra_stages: Sequence[Reconciler] = ()) -> None:
        self.config = config
        self.registry = registry
        # How long a backend that is down needs to come back: its recovery checks.
        checks = health or HealthCheckConfig()
        self.recovery_seconds = min(MAX_RETRY_AFTER, max(1, math.ceil(
            checks.interval_seconds * checks.recovery_threshold)))
        self._chains: dict[str, list[str | None]] = {}
        quality = quality or QualityConfig()
        affinity = None if config.affinity == "off" or config.strategy != "smart" else \
            Affinity(config.affinity_balance_ratio, config.affinity_balance_gap)
        self.scheduler = SchedulerReconciler(
            Strategies(rng).get(config.strategy),
            Scorer(config.weights, quality.min_requests), queue or QueueConfig(), affinity)
        self.pipeline = Pipeline([
            RequestAnalyzer(registry, config.aliases, PolicySet(config.policies)),
            LifecycleReconciler(),
            PrivacyReconciler(),
            BudgetReconciler(config.budget, budget_view or _no_spend, tenant_spend,
                             config.default_output_tokens),
            TierReconciler(),
            QualityReconciler(quality),
            *extra_stages,
        ], self.scheduler)

    def select_backend(self, request: RoutingRequest) -> Route:
        return self.outcome(request, self.decide(request))

    def outcome(self, request: RoutingRequest, decision: RoutingDecision) -> Route:
        """The route a decision means for a caller that will not wait (any more): a
        Queue goes to its fallback or is a 503 with Retry-After; a Reject is an error."""
        if isinstance(decision, Route):
            return decision
        if isinstance(decision, Queue):
            if decision.fallback is not None:  # nobody waits inside a synchronous call
                return decision.fallback
            raise QueueRequired(_message(request.model, decision.rejection_reasons), decision)
        if not decision.model_known:
            raise self._unknown_model(request.model)
        out_of_budget = [r for r in decision.rejection_reasons if "out of budget" in r.reason
                         and r.stage == "BudgetReconciler"]
        if out_of_budget and request.tenant is not None:
            raise InsufficientQuota(f"{out_of_budget[0].reason}, and no free backend serves "
                                    f"'{request.model}'")
        needed = self._never_fits(request)
        if needed:
            raise ContextLengthExceeded(
                f"The request needs about {needed} tokens of context, more than any backend "
                f"serving '{request.model}' has; shorten the messages or lower max_tokens",
                param="messages")
        raise no_viable_backend(request.model, decision.rejection_reasons)

    def with_retry_hint(self, error: NoViableBackend) -> NoViableBackend:
        """The 503 with Retry-After when waiting helps: a backend coming back after its
        recovery checks, freeing capacity, or loading its model (the HTTP layer's
        concern: `select_backend` itself reports only what the queue estimated)."""
        if error.retry_after is None and waiting_helps(error):
            eta = soonest_ready(list(self.registry), time.time()) \
                if _refused_by(error, LIFECYCLE) else None
            error.retry_after = self.recovery_seconds if eta is None else \
                min(MAX_RETRY_AFTER, max(1, math.ceil(eta)))
        return error

    def _never_fits(self, request: RoutingRequest) -> int:
        """The context the request needs when no backend of any model in its fallback
        chain has that much (no wait or retry helps: a 400, not a 503); else 0."""
        needs = request.requirements
        if needs is None or not needs.context_needed:
            return 0
        resolved = resolve(request.model, self.config.aliases)
        models = [resolved, *(resolve(m, self.config.aliases)
                              for m in self.config.fallbacks.get(resolved, []))]
        windows = [b.window_tokens(m) for m in models for b in self.registry.serving(m)]
        fits = not windows or any(w is None or w >= needs.context_needed for w in windows)
        return 0 if fits else needs.context_needed

    def decide(self, request: RoutingRequest, trace: Trace | None = None) -> RoutingDecision:
        """Run the pipeline for the model, then down its fallback chain, until one routes.

        A queue for an earlier model keeps its place: a later model's route becomes
        the queue's fallback, so the request waits for the model it asked for first.
        """
        queued: Queue | None = None
        reasons: list[RejectionReason] = []
        known = False
        for fallback in self._fallbacks(request.model):
            intent = self._intent(request, fallback)
            decision = self.pipeline.run(intent, None if trace is None else trace.effects)
            if trace is not None:
                model = intent.resolved_model
                trace.scores += [ScoreRow(model=model, backend=b.name, parts=p, cold=None
                                          if p.warmth == 1.0 else cold_reason(b, model))
                                 for b, p in self.scheduler.score_table(intent)]
            known = known or intent.model_served
            if isinstance(decision, Route):
                if queued is None:
                    return decision
                return msgspec.structs.replace(queued, fallback=queued.fallback or decision)
            if isinstance(decision, Queue):
                queued = queued or decision
                if decision.fallback is not None:
                    return queued
            reasons += decision.rejection_reasons
            if not self._may_fall_back(request, intent):
                break
        if queued is not None:
            return queued
        return Reject(rejection_reasons=reasons, model_known=known)

    def _fallbacks(self, model: str) -> list[str | None]:
        chain = self._chains.get(model)
        if chain is None:
            if len(self._chains) >= CHAIN_CACHE_SIZE:  # model names come from clients
                self._chains.clear()
            resolved = resolve(model, self.config.aliases)
            chain = self._chains[model] = [None, *self.config.fallbacks.get(resolved, [])]
        return chain

    @staticmethod
    def _may_fall_back(request: RoutingRequest, intent: RoutingIntent) -> bool:
        return intent.policy.fallback_allowed and not request.flags.strict

    def _intent(self, request: RoutingRequest, fallback: str | None) -> RoutingIntent:
        intent = RoutingIntent(request_id=request.request_id, requested_model=request.model,
                               resolved_model=request.model, endpoint=request.endpoint,
                               payload=request.payload, fallback_model=fallback,
                               headers=request.flags, attempt=request.attempt,
                               tried=request.excluded, tenant=request.tenant,
                               affinity=self._affinity_of(request))
        if request.requirements is not None:
            intent.requirements, intent.requirements_known = request.requirements, True
        return intent

    def _affinity_of(self, request: RoutingRequest) -> AffinityKey | None:
        """The request's key, as `[routing] affinity` allows: a session key always, a
        prefix key only in "prefix" mode."""
        key = request.affinity
        if key is None or self.config.affinity == "off":
            return None
        if key.source == "prefix" and self.config.affinity != "prefix":
            return None
        return key

    def _unknown_model(self, model: str) -> Exception:
        # A backend that never answered discovery may serve the model: that is not a 404.
        silent = [b for b in self.registry if not b.models and not b.health.routable]
        if silent:
            reasons = [RejectionReason(b.name, "RequestAnalyzer",
                                       f"could not be asked for its models at {b.shown_url}: "
                                       f"{b.health.reason}", bring_back(b)) for b in silent]
            listed = "; ".join(f"{b.name} at {b.shown_url} ({b.health.reason})" for b in silent)
            error = no_viable_backend(model, reasons)
            error.message = (f"The model '{model}' is not known, and these backends could not "
                             f"be asked for their models: {listed}")
            error.code = "backends_not_reachable"
            return error
        return ModelNotFound(f"The model '{model}' does not exist on any backend",
                             param="model")


def _message(model: str, reasons: list[RejectionReason]) -> str:
    listed = ", ".join(f"{r.backend} ({r.reason})" for r in reasons)
    return f"No backend can serve '{model}' now: {listed}"


def _no_spend() -> BudgetView:
    return _empty_month(month_of())


@functools.lru_cache(maxsize=4)
def _empty_month(month: str) -> BudgetView:
    return BudgetView(month=month)


def _refused_by(error: NoViableBackend, stage: str) -> bool:
    return any(group["stage"] == stage
               for group in error.extra.get("rejection_reasons") or [])
