"""The pipeline as a whole: stage order, extension by a new stage, and its invariants."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nexus.backends.registry import Registry
from nexus.config.schema import Config
from nexus.core.errors import NoViableBackend
from nexus.core.types import RequestFlags
from nexus.http.openai import tenant_flags
from nexus.routing import Router, RoutingRequest
from nexus.routing.aliases import resolve
from nexus.routing.intent import RoutingIntent
from nexus.routing.policies import PolicySet
from nexus.routing.router import Trace
from nexus.routing.types import Queue, Reject, Route
from nexus.tenants.model import KeyRecord, Tenant
from tests.support.fleet_helpers import make_backend, make_registry

STAGES = ["RequestAnalyzer", "LifecycleReconciler", "PrivacyReconciler", "BudgetReconciler",
          "TierReconciler", "QualityReconciler", "SchedulerReconciler"]


class NoWeekendGpu:
    """A seventh, test-only stage: it needs nothing from the six and they nothing from it."""

    name = "NoWeekendGpu"

    def __init__(self, banned: str) -> None:
        self.banned = banned
        self.seen: list[str] = []

    def reconcile(self, intent: RoutingIntent) -> None:
        self.seen.append(intent.resolved_model)
        intent.narrow(self.name, lambda b: ("maintenance window", "try again Monday")
                      if b.name == self.banned else None)


def test_stages_run_in_the_documented_order() -> None:
    router = Router(msgspec.convert({}, Config).routing, make_registry(make_backend("a")))
    trace = Trace()
    router.decide(RoutingRequest(model="m"), trace)
    assert [e.stage for e in trace.effects] == STAGES


def test_a_seventh_stage_plugs_in_without_touching_the_six() -> None:
    stage = NoWeekendGpu("big")
    registry = make_registry(make_backend("big", priority=100), make_backend("small"))
    router = Router(msgspec.convert({}, Config).routing, registry, extra_stages=[stage])
    trace = Trace()
    decision = router.decide(RoutingRequest(model="m"), trace)
    assert isinstance(decision, Route)
    assert decision.backend.name == "small"
    assert [e.stage for e in trace.effects] == [*STAGES[:6], "NoWeekendGpu", STAGES[6]]
    assert stage.seen == ["m"]
    alone = Router(msgspec.convert({}, Config).routing,
                   make_registry(make_backend("big", priority=100)), extra_stages=[stage])
    with pytest.raises(NoViableBackend) as info:
        alone.select_backend(RoutingRequest(model="m"))
    assert info.value.extra["suggestion"] == "try again Monday"


# -- properties over random fleets, policies and requests --------------------------------------

MODELS = ["m1", "m2", "m3"]


@st.composite
def fleets(draw: st.DrawFn) -> tuple[Router, Registry, list[str]]:
    count = draw(st.integers(1, 8))
    backends = []
    for i in range(count):
        cloud = draw(st.booleans())
        fields: dict[str, Any] = {
            "models": draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=3,
                                    unique=True)),
            "zone": draw(st.sampled_from(["restricted", "open"])),
            "tier": draw(st.integers(1, 5)),
            "priority": draw(st.integers(0, 100)),
            "max_concurrent": draw(st.integers(1, 4)),
            "capabilities": {"vision": draw(st.booleans()), "tools": draw(st.booleans())},
        }
        if cloud:
            fields["type"] = "openai"
        backend = make_backend(f"b{i}", **fields)
        state = draw(st.sampled_from(["healthy", "unhealthy", "loading", "unknown"]))
        if state == "unhealthy":
            backend.health.unreachable("down")
        elif state == "loading":
            backend.health.loading(draw(st.sampled_from([None, 1.0, 500.0])))
        elif state == "unknown":
            backend.health.__init__(3, 2)  # type: ignore[misc]
        backend.in_flight = draw(st.integers(0, 4))
        for _ in range(draw(st.integers(0, 12))):
            backend.metrics.error()
        backends.append(backend)
    policies = draw(st.lists(st.fixed_dictionaries({
        "model_pattern": st.sampled_from(["m1", "m2", "m*", "*", "{m1,m3}"]),
        "privacy": st.sampled_from(["restricted", "unrestricted"]),
        "min_tier": st.none() | st.integers(1, 5),
        "fallback_allowed": st.booleans(),
    }), max_size=3))
    routing = {"policies": policies,
               "fallbacks": draw(st.sampled_from([{}, {"m1": ["m2", "m3"]}, {"m2": ["m1"]}])),
               "aliases": {"alias": "m1"},
               "strategy": draw(st.sampled_from(["smart", "round_robin", "priority_only",
                                                 "random"]))}
    config = msgspec.convert({"routing": routing}, Config)
    registry = Registry(backends)
    router = Router(config.routing, registry, rng=random.Random(0))
    restricted_models = [p["model_pattern"] for p in policies if p["privacy"] == "restricted"]
    return router, registry, restricted_models


requests = st.builds(
    lambda model, restricted, strict, flexible, vision, tried: RoutingRequest(
        model=model, flags=RequestFlags(restricted=restricted, strict=strict, flexible=flexible),
        payload={"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "x"}}] if vision else "hi"}]},
        excluded=frozenset(tried), attempt=len(tried)),
    st.sampled_from([*MODELS, "alias"]), st.booleans(), st.booleans(), st.booleans(),
    st.booleans(), st.sets(st.sampled_from([f"b{i}" for i in range(8)]), max_size=3))

PROPERTY = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def routes_of(decision: Any) -> list[Route]:
    if isinstance(decision, Route):
        return [decision]
    if isinstance(decision, Queue) and decision.fallback is not None:
        return [decision.fallback]
    return []


@PROPERTY
@given(fleets(), requests)
def test_restricted_requests_never_reach_an_open_zone(fleet: Any,
                                                      request: RoutingRequest) -> None:
    router, _, _ = fleet
    policies = PolicySet(router.config.policies)
    resolved = resolve(request.model, router.config.aliases)
    for route in routes_of(router.decide(request)):  # queue and model fallbacks included
        names = [request.model, resolved, route.model]
        if request.flags.restricted or policies.effective(names).restricted:
            assert route.backend.config.zone == "restricted"
        assert route.backend.name not in request.excluded  # a retry never goes back


@PROPERTY
@given(fleets(), requests)
def test_no_stage_ever_puts_back_an_excluded_backend(fleet: Any,
                                                     request: RoutingRequest) -> None:
    router, _, _ = fleet
    trace = Trace()
    router.decide(request, trace)
    for effect in trace.effects:
        if effect.stage == "RequestAnalyzer":  # it builds the list; every later stage narrows
            continue
        assert set(effect.after) <= set(effect.before)
        dropped = set(effect.before) - set(effect.after)
        assert dropped == {r.backend for r in effect.reasons}  # every drop says why


@PROPERTY
@given(fleets(), requests)
def test_a_reject_names_every_backend_serving_the_model(fleet: Any,
                                                        request: RoutingRequest) -> None:
    router, registry, _ = fleet
    decision = router.decide(request)
    if not isinstance(decision, Reject) or not decision.model_known:
        return
    tried_models = {"alias": "m1"}.get(request.model, request.model)
    serving = {b.name for b in registry.serving(tried_models)}
    assert serving <= {r.backend for r in decision.rejection_reasons}


RESTRICTED_KEY = Tenant(KeyRecord(name="k", secret_sha256="0" * 64, privacy="restricted"))
OPEN_KEY = Tenant(KeyRecord(name="o", secret_sha256="1" * 64))


@PROPERTY
@given(fleets(), requests, st.sampled_from([RESTRICTED_KEY, OPEN_KEY]))
def test_a_restricted_key_never_reaches_an_open_zone(fleet: Any, request: RoutingRequest,
                                                     tenant: Tenant) -> None:
    router, _, _ = fleet
    keyed = msgspec.structs.replace(request, tenant=tenant,
                                    flags=tenant_flags(request.flags, tenant))
    for route in routes_of(router.decide(keyed)):  # queue and model fallbacks included
        if tenant.restricted:
            assert route.backend.config.zone == "restricted"
