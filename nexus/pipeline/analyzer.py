"""RequestAnalyzer: resolve aliases, read the request's needs, list the backends that fit."""

from __future__ import annotations

from nexus.backends.backend import Backend
from nexus.backends.registry import Registry
from nexus.pipeline.aliases import resolve
from nexus.pipeline.intent import RoutingIntent, Verdict
from nexus.pipeline.policies import PolicySet
from nexus.pipeline.requirements import requirements_of

STAGE = "RequestAnalyzer"


class RequestAnalyzer:
    name = STAGE

    def __init__(self, registry: Registry, aliases: dict[str, str], policies: PolicySet) -> None:
        self.registry = registry
        self.aliases = aliases
        self.policies = policies

    def reconcile(self, intent: RoutingIntent) -> None:
        target = intent.fallback_model or intent.requested_model
        intent.resolved_model = resolve(target, self.aliases)
        names = [intent.requested_model, resolve(intent.requested_model, self.aliases),
                 target, intent.resolved_model]
        intent.policy = self.policies.effective(dict.fromkeys(names))
        intent.requirements = requirements_of(intent.payload)
        intent.candidates = list(self.registry.serving(intent.resolved_model))
        intent.model_served = bool(intent.candidates)
        intent.narrow(STAGE, lambda backend: self._why_not(backend, intent))

    @staticmethod
    def _why_not(backend: Backend, intent: RoutingIntent) -> Verdict:
        if backend.name in intent.tried:
            return "failed earlier in this request", "nothing to do: retrying elsewhere"
        if backend.api.value != "openai" and intent.endpoint != "chat":
            return (f"does not serve /{intent.endpoint}",
                    "use an OpenAI-compatible backend for this endpoint")
        return _capability_gap(backend, intent)


def _capability_gap(backend: Backend, intent: RoutingIntent) -> Verdict:
    needs, can = intent.requirements, backend.config.capabilities
    for needed, capable, what in ((needs.vision, can.vision, "images"),
                                  (needs.tools, can.tools, "tools"),
                                  (needs.json_mode, can.json_mode, "JSON mode")):
        if needed and not capable:
            return (f"cannot handle {what}",
                    f"send the request without {what}, or add a backend that handles them")
    window = can.context_window
    if window is not None and needs.context_needed > window:
        return (f"context window {window} tokens < {needs.context_needed} needed",
                "shorten the conversation or lower max_tokens")
    return None
