"""Each reconciler on its own, against hand-built snapshots of the fleet."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest

from nexus.budget.month import BudgetStatus, BudgetView
from nexus.config.schema import BudgetConfig, PolicyConfig, QualityConfig, QueueConfig, Weights
from nexus.core.types import RequestFlags
from nexus.routing.intent import RoutingIntent
from nexus.routing.policies import PolicySet
from nexus.routing.reconcilers.analyzer import RequestAnalyzer
from nexus.routing.reconcilers.budget import BudgetReconciler
from nexus.routing.reconcilers.privacy import PrivacyReconciler
from nexus.routing.reconcilers.quality import QualityReconciler
from nexus.routing.reconcilers.scheduler import SchedulerReconciler
from nexus.routing.reconcilers.tier import TierReconciler
from nexus.routing.requirements import requirements_of
from nexus.routing.scoring import Scorer
from nexus.routing.strategies import Strategies
from nexus.routing.types import Queue, Reject, Route
from tests.support.fleet_helpers import make_backend, make_intent, make_registry, names

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}


def analyzer(*backends: Any, aliases: dict[str, str] | None = None,
             policies: list[dict[str, Any]] | None = None) -> RequestAnalyzer:
    policy_set = PolicySet([msgspec.convert(p, PolicyConfig) for p in policies or []])
    return RequestAnalyzer(make_registry(*backends), aliases or {}, policy_set)


def analyzed(stage: RequestAnalyzer, model: str = "m", payload: dict[str, Any] | None = None,
             **kw: Any) -> RoutingIntent:
    intent = RoutingIntent(request_id="t", requested_model=model, resolved_model=model,
                           payload=payload, **kw)
    stage.reconcile(intent)
    return intent


# -- RequestAnalyzer ---------------------------------------------------------------------------

def test_requirements_are_read_from_the_body() -> None:
    needs = requirements_of({
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x" * 400}, IMAGE]}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "response_format": {"type": "json_object"}, "max_tokens": 100})
    assert (needs.vision, needs.tools, needs.json_mode) == (True, True, True)
    assert needs.input_tokens == 100 + 4  # 400 chars / 4, plus one message's overhead
    assert needs.context_needed == needs.input_tokens + 100


def test_plain_text_needs_nothing_special() -> None:
    needs = requirements_of({"messages": [{"role": "user", "content": "hi"}],
                             "response_format": {"type": "text"}})
    assert (needs.vision, needs.tools, needs.json_mode, needs.max_output_tokens) == \
        (False, False, False, None)


def test_analyzer_resolves_aliases_and_lists_serving_backends() -> None:
    a = make_backend("a", models=["llama3"])
    b = make_backend("b", models=["other"])
    intent = analyzed(analyzer(a, b, aliases={"fast": "llama3"}), "fast")
    assert intent.resolved_model == "llama3"
    assert names(intent.candidates) == ["a"]
    assert intent.model_served


def test_analyzer_excludes_backends_lacking_a_needed_capability() -> None:
    blind = make_backend("blind", capabilities={"vision": False})
    sees = make_backend("sees")
    payload = {"messages": [{"role": "user", "content": [IMAGE]}]}
    intent = analyzed(analyzer(blind, sees), payload=payload)
    assert names(intent.candidates) == ["sees"]
    (reason,) = intent.rejection_reasons
    assert (reason.backend, reason.stage, reason.reason) == ("blind", "RequestAnalyzer",
                                                              "cannot handle images")


def test_analyzer_excludes_a_context_window_too_small() -> None:
    small = make_backend("small", capabilities={"context_window": 100})
    large = make_backend("large", capabilities={"context_window": 100_000})
    payload = {"messages": [{"role": "user", "content": "x" * 400}], "max_tokens": 500}
    intent = analyzed(analyzer(small, large), payload=payload)
    assert names(intent.candidates) == ["large"]
    assert "context window 100 tokens < 604 needed" in intent.rejection_reasons[0].reason


def test_analyzer_excludes_what_already_failed_and_what_cannot_speak_the_endpoint() -> None:
    failed = make_backend("failed")
    claude = make_backend("claude", type="anthropic")
    local = make_backend("local")
    intent = analyzed(analyzer(failed, claude, local), endpoint="embeddings",
                      tried=frozenset({"failed"}))
    assert names(intent.candidates) == ["local"]
    assert {r.backend for r in intent.rejection_reasons} == {"failed", "claude"}


def test_policy_matched_by_any_name_of_the_request_applies() -> None:
    stage = analyzer(make_backend("a", models=["llama3"]), aliases={"alias": "llama3"},
                     policies=[{"model_pattern": "llama*", "privacy": "restricted"}])
    assert analyzed(stage, "alias").policy.restricted


def test_policies_first_match_wins_and_globs_compile_once() -> None:
    policies = PolicySet([msgspec.convert(p, PolicyConfig) for p in (
        {"model_pattern": "gpt-4*", "min_tier": 3},
        {"model_pattern": "gpt-*", "min_tier": 1},
        {"model_pattern": "{claude,gemini}-*", "privacy": "restricted"})])
    first = policies.match("gpt-4o")
    assert first is not None
    assert first.min_tier == 3
    assert policies.match("gpt-4o") is first  # cached
    brace = policies.match("gemini-pro")
    assert brace is not None
    assert brace.privacy == "restricted"
    assert policies.match("llama3") is None


# -- PrivacyReconciler -------------------------------------------------------------------------

def test_restricted_policy_keeps_only_restricted_zones() -> None:
    local = make_backend("local", zone="restricted")
    cloud = make_backend("cloud", type="openai")
    unset = make_backend("unset")  # no zone given: counts as open
    intent = make_intent(local, cloud, unset,
                         policies=[{"model_pattern": "*", "privacy": "restricted"}])
    PrivacyReconciler().reconcile(intent)
    assert names(intent.candidates) == ["local"]
    assert intent.excluded == ["cloud", "unset"]
    assert intent.restricted
    assert all(r.stage == "PrivacyReconciler" for r in intent.rejection_reasons)
    assert "policy '*'" in intent.rejection_reasons[0].reason


def test_the_privacy_header_restricts_but_cannot_loosen() -> None:
    local = make_backend("local", zone="restricted")
    cloud = make_backend("cloud", type="openai")
    asked = make_intent(local, cloud, flags=RequestFlags(restricted=True))
    PrivacyReconciler().reconcile(asked)
    assert names(asked.candidates) == ["local"]
    unrestricted = make_intent(local, cloud, flags=RequestFlags(restricted=False),
                               policies=[{"model_pattern": "m", "privacy": "restricted"}])
    PrivacyReconciler().reconcile(unrestricted)
    assert names(unrestricted.candidates) == ["local"]


def test_unrestricted_requests_keep_every_zone() -> None:
    intent = make_intent(make_backend("local", zone="restricted"), make_backend("cloud"))
    PrivacyReconciler().reconcile(intent)
    assert len(intent.candidates) == 2


# -- BudgetReconciler --------------------------------------------------------------------------

def budget_stage(spent_usd: float, **config: Any) -> BudgetReconciler:
    settings = msgspec.convert({"monthly_limit_usd": 100.0, **config}, BudgetConfig)
    view = BudgetView(month="2026-11", spent_micro_usd=int(spent_usd * 1_000_000))
    return BudgetReconciler(settings, lambda: view)


def paid_fleet() -> tuple[Any, Any]:
    local = make_backend("local", zone="restricted", models=["gpt-4o"])
    cloud = make_backend("cloud", type="openai", models=["gpt-4o"])
    return local, cloud


def test_cost_estimate_uses_each_backends_price() -> None:
    local, cloud = paid_fleet()
    intent = make_intent(local, cloud, model="gpt-4o",
                         payload={"messages": [{"role": "user", "content": "x" * 4000}],
                                  "max_tokens": 1000})
    BudgetReconciler(None, lambda: BudgetView(month="x")).reconcile(intent)
    # gpt-4o: $2.50 / M input, $10 / M output; 1004 input tokens, 1000 output tokens.
    assert intent.costs == {"cloud": 2510 + 10_000}  # free backends are not listed
    assert intent.cost_estimate.token_tier == "medium"


def test_normal_budget_changes_nothing() -> None:
    intent = make_intent(*paid_fleet(), model="gpt-4o")
    budget_stage(10).reconcile(intent)
    assert intent.budget_status is BudgetStatus.NORMAL
    assert len(intent.candidates) == 2
    assert not intent.adjustments


def test_soft_limit_raises_local_backends_scores() -> None:
    intent = make_intent(*paid_fleet(), model="gpt-4o")
    budget_stage(80).reconcile(intent)
    assert intent.budget_status is BudgetStatus.SOFT_LIMIT
    assert [(a.backend, a.factor) for a in intent.adjustments] == [("local", 1000.0)]
    assert len(intent.candidates) == 2


@pytest.mark.parametrize(("action", "left", "warned"), [
    ("warn", ["local", "cloud"], True),
    ("block_cloud", ["local"], False),
    ("block_all", [], False),
])
def test_hard_limit_actions(action: str, left: list[str], warned: bool) -> None:
    intent = make_intent(*paid_fleet(), model="gpt-4o")
    budget_stage(100, hard_limit_action=action).reconcile(intent)
    assert intent.budget_status is BudgetStatus.HARD_LIMIT
    assert names(intent.candidates) == left
    assert ("X-Nexus-Budget-Warning" in intent.warnings) is warned


def test_max_cost_per_request_excludes_expensive_backends() -> None:
    intent = make_intent(*paid_fleet(), model="gpt-4o",
                         payload={"messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 100_000},
                         policies=[{"model_pattern": "gpt-*", "max_cost_per_request": 0.5}])
    BudgetReconciler(None, lambda: BudgetView(month="x")).reconcile(intent)
    assert names(intent.candidates) == ["local"]
    assert "exceeds the policy's max_cost_per_request $0.500000" in \
        intent.rejection_reasons[0].reason


def test_a_stale_view_under_strict_enforcement_fails_closed_for_paid_backends() -> None:
    settings = BudgetConfig(monthly_limit_usd=100.0, enforcement="strict")
    view = BudgetView(month="2026-11", stale=True)
    intent = make_intent(*paid_fleet(), model="gpt-4o")
    BudgetReconciler(settings, lambda: view).reconcile(intent)
    assert names(intent.candidates) == ["local"]
    assert "stale" in intent.rejection_reasons[0].reason


# -- TierReconciler ----------------------------------------------------------------------------

def tiered(flags: RequestFlags | None = None, fallback_allowed: bool = True,
           tiers: tuple[int, ...] = (1, 3)) -> RoutingIntent:
    backends = [make_backend(f"t{t}", tier=t) for t in tiers]
    intent = make_intent(*backends, flags=flags, policies=[
        {"model_pattern": "m", "min_tier": 3, "fallback_allowed": fallback_allowed}])
    TierReconciler().reconcile(intent)
    return intent


def test_backends_below_min_tier_are_excluded_by_default() -> None:
    intent = tiered()
    assert names(intent.candidates) == ["t3"]
    assert "X-Nexus-Flexible" in intent.rejection_reasons[0].suggestion


def test_flexible_allows_a_lower_tier_only_when_nothing_meets_it() -> None:
    assert names(tiered(RequestFlags(flexible=True)).candidates) == ["t3"]
    lower = tiered(RequestFlags(flexible=True), tiers=(1, 2))
    assert names(lower.candidates) == ["t1", "t2"]
    assert "min_tier 3" in lower.warnings["X-Nexus-Tier-Warning"]


def test_strict_or_no_fallback_overrides_flexible() -> None:
    assert tiered(RequestFlags(flexible=True, strict=True), tiers=(1, 2)).candidates == []
    assert tiered(RequestFlags(flexible=True), fallback_allowed=False,
                  tiers=(1, 2)).candidates == []


# -- QualityReconciler -------------------------------------------------------------------------

def record(backend: Any, successes: int, errors: int) -> None:
    for _ in range(successes):
        backend.metrics.success()
    for _ in range(errors):
        backend.metrics.error()


def test_a_backend_failing_often_is_excluded() -> None:
    bad, good = make_backend("bad"), make_backend("good")
    record(bad, 4, 8)
    record(good, 12, 0)
    intent = make_intent(bad, good)
    QualityReconciler(QualityConfig()).reconcile(intent)
    assert names(intent.candidates) == ["good"]
    assert "error rate 67%" in intent.rejection_reasons[0].reason


def test_a_slow_first_token_is_excluded() -> None:
    slow, fast = make_backend("slow"), make_backend("fast")
    slow.metrics.first_token(5000.0)
    fast.metrics.first_token(200.0)
    intent = make_intent(slow, fast)
    QualityReconciler(QualityConfig()).reconcile(intent)
    assert names(intent.candidates) == ["fast"]


def test_too_few_requests_give_no_verdict() -> None:
    young = make_backend("young")
    record(young, 0, 3)
    intent = make_intent(young, make_backend("other"))
    QualityReconciler(QualityConfig(min_requests=10)).reconcile(intent)
    assert len(intent.candidates) == 2


def test_when_all_are_degraded_they_stay_but_lose_score() -> None:
    a, b = make_backend("a"), make_backend("b")
    record(a, 0, 20)
    b.metrics.first_token(9000.0)
    intent = make_intent(a, b)
    QualityReconciler(QualityConfig()).reconcile(intent)
    assert names(intent.candidates) == ["a", "b"]
    assert [(x.backend, x.factor) for x in intent.adjustments] == [("a", 0.5), ("b", 0.5)]
    assert "every candidate is degraded" in intent.adjustments[0].reason


# -- SchedulerReconciler -----------------------------------------------------------------------

def scheduler(strategy: str = "smart", **queue: Any) -> SchedulerReconciler:
    return SchedulerReconciler(Strategies(random.Random(1)).get(strategy),
                               Scorer(Weights(), 10), QueueConfig(**queue))


def scheduled(*backends: Any, stage: SchedulerReconciler | None = None) -> Any:
    stage = stage or scheduler()
    intent = make_intent(*backends)
    stage.reconcile(intent)
    return intent, stage.decide(intent)


def test_routes_to_the_best_scored_backend_with_the_cost_estimate() -> None:
    _, decision = scheduled(make_backend("low", priority=10), make_backend("high", priority=90))
    assert isinstance(decision, Route)
    assert decision.backend.name == "high"
    assert decision.reason.startswith("smart score=")


def test_unhealthy_backends_are_dropped_with_a_reason() -> None:
    down = make_backend("down", healthy=False)
    down.health.unreachable("connection refused")
    intent, decision = scheduled(down, make_backend("up"))
    assert isinstance(decision, Route)
    assert decision.backend.name == "up"
    assert intent.rejection_reasons[0].reason == "unhealthy: connection refused"


def test_queue_when_every_candidate_is_at_capacity() -> None:
    full = make_backend("full", max_concurrent=1)
    full.in_flight = 1
    _, decision = scheduled(full)
    assert isinstance(decision, Queue)
    assert decision.fallback is None
    assert "at capacity 1/1" in decision.reason


def test_queue_for_a_preferred_backend_that_is_loading_with_a_fallback() -> None:
    loading = make_backend("big", priority=90)
    loading.health.loading(5)
    ready = make_backend("small", priority=10)
    _, decision = scheduled(loading, ready)
    assert isinstance(decision, Queue)
    assert decision.fallback is not None
    assert decision.fallback.backend.name == "small"
    assert 0 < decision.estimated_wait_ms <= 5000


def test_a_loading_backend_not_worth_waiting_for_is_passed_over() -> None:
    loading = make_backend("big", priority=90)
    loading.health.loading(600)  # longer than the queue's max wait
    _, decision = scheduled(loading, make_backend("small", priority=10))
    assert isinstance(decision, Route)
    assert decision.backend.name == "small"


def test_reject_carries_every_reason() -> None:
    down = make_backend("down", healthy=False)
    down.health.unreachable("refused")
    intent = make_intent(down)
    stage = scheduler()
    stage.reconcile(intent)
    decision = stage.decide(intent)
    assert isinstance(decision, Reject)
    assert [r.backend for r in decision.rejection_reasons] == ["down"]
    assert decision.model_known


def test_score_table_is_best_first() -> None:
    stage = scheduler()
    intent = make_intent(make_backend("low", priority=10), make_backend("high", priority=90))
    assert [b.name for b, _ in stage.score_table(intent)] == ["high", "low"]


def test_flexible_counts_a_down_backend_as_not_meeting_the_tier() -> None:
    low, high = make_backend("low", tier=1), make_backend("high", tier=3, healthy=False)
    high.health.unreachable("refused")
    intent = make_intent(low, high, flags=RequestFlags(flexible=True),
                         policies=[{"model_pattern": "m", "min_tier": 3}])
    TierReconciler().reconcile(intent)
    assert names(intent.candidates) == ["low", "high"]  # the scheduler drops "high" later
    assert "X-Nexus-Tier-Warning" in intent.warnings
