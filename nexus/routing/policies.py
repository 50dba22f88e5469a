"""TrafficPolicies: globs compiled once, first match wins, lookups cached per model name."""

from __future__ import annotations

from collections.abc import Iterable

import msgspec
from wcmatch import fnmatch

from nexus.budget.prices import micro_usd
from nexus.config.schema import PolicyConfig

CACHE_SIZE = 4096  # distinct model names remembered; a flood of made-up names resets it


class EffectivePolicy(msgspec.Struct, frozen=True):
    """The strictest combination of the policies that matched the request's model names."""

    restricted: bool = False
    min_tier: int | None = None
    max_cost_micro_usd: int | None = None
    fallback_allowed: bool = True
    sources: tuple[str, ...] = ()  # the patterns that matched, for explanations

    def tighten(self, policy: PolicyConfig) -> EffectivePolicy:
        max_cost = None if policy.max_cost_per_request is None \
            else micro_usd(policy.max_cost_per_request)
        return EffectivePolicy(
            restricted=self.restricted or policy.privacy == "restricted",
            min_tier=_max(self.min_tier, policy.min_tier),
            max_cost_micro_usd=_min(self.max_cost_micro_usd, max_cost),
            fallback_allowed=self.fallback_allowed and policy.fallback_allowed,
            sources=(*self.sources, policy.model_pattern))


NO_POLICY = EffectivePolicy()


class PolicySet:
    def __init__(self, policies: list[PolicyConfig]) -> None:
        self._compiled = [(fnmatch.compile(p.model_pattern, flags=fnmatch.BRACE), p)
                          for p in policies]
        self._match_cache: dict[str, PolicyConfig | None] = {}
        self._effective_cache: dict[tuple[str, ...], EffectivePolicy] = {}

    def match(self, model: str) -> PolicyConfig | None:
        if model not in self._match_cache:
            if len(self._match_cache) >= CACHE_SIZE:  # model names come from clients
                self._match_cache.clear()
            self._match_cache[model] = next(
                (policy for pattern, policy in self._compiled if pattern.match(model)), None)
        return self._match_cache[model]

    def effective(self, names: Iterable[str]) -> EffectivePolicy:
        """One request may be known by several names (asked, alias target, fallback): a
        policy matched by any of them applies, so no name can be used to loosen one."""
        key = tuple(names)
        cached = self._effective_cache.get(key)
        if cached is None:
            if len(self._effective_cache) >= CACHE_SIZE:
                self._effective_cache.clear()
            cached = NO_POLICY
            matched = {id(p): p for n in key if (p := self.match(n)) is not None}
            for policy in matched.values():  # each policy once, in the order first matched
                cached = cached.tighten(policy)
            self._effective_cache[key] = cached
        return cached


def _max(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _min(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)
