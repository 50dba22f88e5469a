"""`Router.select_backend` is the one routing entry point the HTTP layer calls."""

from __future__ import annotations

import random

from nexus.backends.backend import Backend
from nexus.backends.registry import Registry
from nexus.config.schema import RoutingConfig
from nexus.errors import ModelNotFound, NoViableBackend
from nexus.routing.aliases import resolve
from nexus.routing.request import Endpoint, Route, RoutingRequest
from nexus.routing.strategies import Strategies

ANTHROPIC_ENDPOINTS: frozenset[Endpoint] = frozenset({"chat"})


class Router:
    def __init__(self, config: RoutingConfig, registry: Registry,
                 rng: random.Random | None = None) -> None:
        self.config = config
        self.registry = registry
        self.strategies = Strategies(config.weights, rng)
        self._pick = self.strategies.get(config.strategy)

    def select_backend(self, request: RoutingRequest) -> Route:
        resolved = resolve(request.model, self.config.aliases)
        for model in self._model_chain(resolved):
            candidates = self._candidates(model, request)
            if candidates:
                backend, reason = self._pick(candidates)
                fallback = model if model != resolved else None
                return Route(backend=backend, model=model, requested_model=request.model,
                             reason=self._reason(reason, fallback, request.attempt),
                             fallback_model=fallback)
        raise self._no_route(request, resolved)

    def _model_chain(self, resolved: str) -> list[str]:
        fallbacks = self.config.fallbacks.get(resolved, [])
        return [resolved, *(resolve(m, self.config.aliases) for m in fallbacks)]

    def _candidates(self, model: str, request: RoutingRequest) -> list[Backend]:
        return [b for b in self.registry.serving(model)
                if b.health.routable and not b.at_capacity
                and b.name not in request.excluded and _speaks(b, request.endpoint)]

    @staticmethod
    def _reason(strategy_reason: str, fallback: str | None, attempt: int) -> str:
        parts = [strategy_reason]
        if fallback:
            parts.append(f"fallback={fallback}")
        if attempt:
            parts.append(f"retry={attempt}")
        return "; ".join(parts)

    def _no_route(self, request: RoutingRequest, resolved: str) -> Exception:
        serving = [b for m in self._model_chain(resolved) for b in self.registry.serving(m)]
        if not serving:
            return self._unknown_model(request.model)
        states = ", ".join(f"{b.name} ({_why_not(b, request)})" for b in serving)
        routable = [b for b in serving if b.health.routable and b.name not in request.excluded]
        at_capacity = bool(routable) and all(b.at_capacity for b in routable)
        return NoViableBackend(f"No backend can serve '{request.model}' now: {states}",
                               retry_after=1 if at_capacity else None)

    def _unknown_model(self, model: str) -> Exception:
        # A backend that never answered discovery may serve the model: that is not a 404.
        silent = [b.name for b in self.registry if not b.models and not b.health.routable]
        if silent:
            return NoViableBackend(f"The model '{model}' is not known, and these backends "
                                   f"could not be asked for their models: {', '.join(silent)}")
        return ModelNotFound(f"The model '{model}' does not exist on any backend",
                             param="model")


def _speaks(backend: Backend, endpoint: Endpoint) -> bool:
    return backend.api.value == "openai" or endpoint in ANTHROPIC_ENDPOINTS


def _why_not(backend: Backend, request: RoutingRequest) -> str:
    if backend.name in request.excluded:
        return "failed this request"
    if not backend.health.routable:
        return f"{backend.health.state.value}: {backend.health.reason}"
    if backend.at_capacity:
        return f"at capacity {backend.in_flight}/{backend.config.max_concurrent}"
    return f"does not serve /{request.endpoint}"
