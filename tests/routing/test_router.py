"""Router behaviour through its one entry point, `Router.select_backend`.

These tests describe routing as clients see it (strategies, aliases, fallbacks,
health, capacity, exclusions); they must keep passing unchanged whatever the
router's insides become.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import msgspec
import pytest

from nexus.backends.registry import Registry
from nexus.config.schema import Config
from nexus.core.errors import ModelNotFound, NoViableBackend
from nexus.routing import Router, RoutingRequest


def fleet(backends: list[dict[str, Any]], **routing: Any) -> tuple[Router, Registry]:
    raw = {"backends": [{"url": f"http://10.0.0.{i}:8000", "models": ["m"], **b}
                        for i, b in enumerate(backends, 1)],
           "routing": routing}
    config = msgspec.convert(raw, Config)
    registry = Registry.from_config(config, environ={"KEY": "secret"})
    for b in registry:
        b.health.success()
    return Router(config.routing, registry, rng=random.Random(7)), registry


def pick(router: Router, model: str = "m", **kw: Any) -> str:
    return router.select_backend(RoutingRequest(model=model, **kw)).backend.name


def test_smart_prefers_higher_priority_when_all_else_is_equal() -> None:
    router, _ = fleet([{"name": "low", "priority": 10}, {"name": "high", "priority": 90}])
    assert {pick(router) for _ in range(10)} == {"high"}


def test_smart_prefers_the_less_loaded_backend() -> None:
    router, registry = fleet([{"name": "busy"}, {"name": "idle"}])
    busy = registry.get("busy")
    assert busy is not None
    busy.in_flight = 20
    assert {pick(router) for _ in range(10)} == {"idle"}


def test_smart_prefers_the_faster_backend() -> None:
    router, registry = fleet([{"name": "slow"}, {"name": "fast"}])
    for name, ms in (("slow", 900.0), ("fast", 20.0)):
        b = registry.get(name)
        assert b is not None
        b.observe_latency(ms)
    assert {pick(router) for _ in range(10)} == {"fast"}


def test_smart_spreads_traffic_over_equal_backends() -> None:
    router, _ = fleet([{"name": "a"}, {"name": "b"}, {"name": "c"}])
    assert set(Counter(pick(router) for _ in range(9))) == {"a", "b", "c"}


def test_smart_reason_gives_the_score() -> None:
    router, _ = fleet([{"name": "a"}])
    assert router.select_backend(RoutingRequest(model="m")).reason.startswith("smart score=")


def test_round_robin_cycles_in_order() -> None:
    router, _ = fleet([{"name": "a"}, {"name": "b"}, {"name": "c"}], strategy="round_robin")
    assert [pick(router) for _ in range(6)] == ["a", "b", "c", "a", "b", "c"]


def test_priority_only_ignores_load() -> None:
    router, registry = fleet([{"name": "low", "priority": 10}, {"name": "high", "priority": 90}],
                             strategy="priority_only")
    high = registry.get("high")
    assert high is not None
    high.in_flight = 31
    assert pick(router) == "high"


def test_random_uses_every_candidate() -> None:
    router, _ = fleet([{"name": "a"}, {"name": "b"}], strategy="random")
    assert set(pick(router) for _ in range(50)) == {"a", "b"}


def test_only_backends_serving_the_model_are_candidates() -> None:
    router, _ = fleet([{"name": "a", "models": ["x"]}, {"name": "b", "models": ["y"]}])
    assert pick(router, "y") == "b"


def test_alias_resolves_to_the_target_model() -> None:
    router, _ = fleet([{"name": "a", "models": ["llama3:70b"]}],
                      aliases={"gpt-4": "llama3:70b"})
    route = router.select_backend(RoutingRequest(model="gpt-4"))
    assert (route.backend.name, route.model, route.requested_model) == ("a", "llama3:70b",
                                                                        "gpt-4")
    assert route.fallback_model is None


def test_alias_chain_of_two_hops() -> None:
    router, _ = fleet([{"name": "a", "models": ["c"]}], aliases={"a1": "b", "b": "c"})
    assert router.select_backend(RoutingRequest(model="a1")).model == "c"


def test_fallback_used_when_the_model_has_no_healthy_backend() -> None:
    router, registry = fleet([{"name": "big", "models": ["llama3:70b"]},
                              {"name": "small", "models": ["qwen2:72b"]}],
                             fallbacks={"llama3:70b": ["qwen2:72b"]})
    big = registry.get("big")
    assert big is not None
    big.health.unreachable("down")
    route = router.select_backend(RoutingRequest(model="llama3:70b"))
    assert (route.backend.name, route.model, route.fallback_model) == ("small", "qwen2:72b",
                                                                       "qwen2:72b")
    assert "fallback=qwen2:72b" in route.reason


def test_fallbacks_are_tried_in_order() -> None:
    router, _ = fleet([{"name": "second", "models": ["f2"]}, {"name": "first", "models": ["f1"]}],
                      fallbacks={"m": ["f1", "f2"]})
    assert pick(router, "m") == "first"


def test_fallback_applies_through_an_alias() -> None:
    router, _ = fleet([{"name": "a", "models": ["target"]}],
                      aliases={"nick": "primary"}, fallbacks={"primary": ["target"]})
    assert router.select_backend(RoutingRequest(model="nick")).fallback_model == "target"


def test_unhealthy_and_loading_backends_are_skipped() -> None:
    router, registry = fleet([{"name": "down"}, {"name": "loading"}, {"name": "up"}])
    down, loading = registry.get("down"), registry.get("loading")
    assert down is not None
    assert loading is not None
    down.health.unreachable("refused")
    loading.health.loading(30)
    assert {pick(router) for _ in range(6)} == {"up"}


def test_backends_at_capacity_are_skipped() -> None:
    router, registry = fleet([{"name": "full", "max_concurrent": 2, "priority": 100},
                              {"name": "free"}])
    full = registry.get("full")
    assert full is not None
    full.in_flight = 2
    assert pick(router) == "free"


def test_all_at_capacity_is_503_with_retry_after() -> None:
    router, registry = fleet([{"name": "full", "max_concurrent": 1}])
    full = registry.get("full")
    assert full is not None
    full.in_flight = 1
    with pytest.raises(NoViableBackend) as info:
        router.select_backend(RoutingRequest(model="m"))
    assert info.value.retry_after == 1
    assert "at capacity" in info.value.message


def test_excluded_backends_are_not_chosen_again() -> None:
    router, _ = fleet([{"name": "a", "priority": 90}, {"name": "b"}])
    assert pick(router, excluded=frozenset({"a"}), attempt=1) == "b"


def test_retry_is_named_in_the_reason() -> None:
    router, _ = fleet([{"name": "a"}, {"name": "b"}])
    route = router.select_backend(RoutingRequest(model="m", excluded=frozenset({"a"}),
                                                 attempt=1))
    assert "retry=1" in route.reason


def test_unknown_model_is_model_not_found() -> None:
    router, _ = fleet([{"name": "a"}])
    with pytest.raises(ModelNotFound):
        router.select_backend(RoutingRequest(model="nope"))


def test_known_model_with_no_healthy_backend_is_503_naming_why() -> None:
    router, registry = fleet([{"name": "a"}])
    a = registry.get("a")
    assert a is not None
    a.health.unreachable("connection refused")
    with pytest.raises(NoViableBackend) as info:
        router.select_backend(RoutingRequest(model="m"))
    assert "a (unhealthy: connection refused)" in info.value.message
    assert info.value.retry_after is None


def test_anthropic_backends_serve_chat_only() -> None:
    router, _ = fleet([{"name": "claude", "type": "anthropic", "api_key_env": "KEY"},
                       {"name": "local"}])
    assert pick(router, endpoint="embeddings") == "local"
    with pytest.raises(NoViableBackend):
        router.select_backend(RoutingRequest(model="m", endpoint="embeddings",
                                             excluded=frozenset({"local"})))
