"""RequestAnalyzer: resolve aliases, read the request's needs, list the backends that fit."""

from __future__ import annotations

from nexus.backends.backend import Backend
from nexus.backends.registry import Registry
from nexus.pipeline.aliases import resolve
from nexus.pipeline.intent import RoutingIntent
from nexus.pipeline.policies import EffectivePolicy, PolicySet
from nexus.pipeline.requirements import requirements_of

STAGE = "RequestAnalyzer"
NAME_CACHE_SIZE = 4096


class RequestAnalyzer:
    name = STAGE

    def __init__(self, registry: Registry, aliases: dict[str, str], policies: PolicySet) -> None:
        self.registry = registry
        self.aliases = aliases
        self.policies = policies
        self._names: dict[tuple[str, str | None], tuple[str, EffectivePolicy]] = {}

    def _resolve(self, requested: str, fallback: str | None) -> tuple[str, EffectivePolicy]:
        """The model to route and the policy of every name the request goes by; cached,
        as aliases and policies only change with the configuration."""
        target = fallback or requested
        resolved = resolve(target, self.aliases)
        names = (requested, resolve(requested, self.aliases), target, resolved)
        return resolved, self.policies.effective(names)

    def reconcile(self, intent: RoutingIntent) -> None:
        key = (intent.requested_model, intent.fallback_model)
        known = self._names.get(key)
        if known is None:
            if len(self._names) >= NAME_CACHE_SIZE:  # model names come from clients
                self._names.clear()
            known = self._names[key] = self._resolve(*key)
        intent.resolved_model, intent.policy = known
        if not intent.requirements_known:
            intent.requirements = requirements_of(intent.payload)
        serving = self.registry.serving(intent.resolved_model)
        intent.model_served = bool(serving)
        kept = _fitting(serving, intent)  # a new list: the registry's index stays intact
        if len(kept) == len(serving):
            intent.candidates = kept
        else:
            intent.candidates = list(serving)
            intent.keep(STAGE, kept, lambda backend: _why_not(backend, intent))


def _fitting(serving: list[Backend], intent: RoutingIntent) -> list[Backend]:
    """The backends that meet the request; in the common case (a first try of a plain
    chat request) there is nothing to check but context windows, often not even that."""
    needs, tried = intent.requirements, intent.tried
    needed = needs.context_needed
    kept = serving  # only ever replaced, never changed: the last step makes the new list
    if tried:
        kept = [b for b in kept if b.name not in tried]
    if intent.endpoint != "chat":
        kept = [b for b in kept if b.openai_api]
    if needs.vision or needs.tools or needs.json_mode:
        kept = [b for b in kept if (b.vision or not needs.vision) and (b.tools or not needs.tools)
                and (b.json_mode or not needs.json_mode)]
    return [b for b in kept if b.context_window is None or b.context_window >= needed]


def _why_not(backend: Backend, intent: RoutingIntent) -> tuple[str, str]:
    if backend.name in intent.tried:
        return "failed earlier in this request", "nothing to do: retrying elsewhere"
    if not backend.openai_api and intent.endpoint != "chat":
        return (f"does not serve /{intent.endpoint}",
                "use an OpenAI-compatible backend for this endpoint")
    needs = intent.requirements
    for needed, capable, what in ((needs.vision, backend.vision, "images"),
                                  (needs.tools, backend.tools, "tools"),
                                  (needs.json_mode, backend.json_mode, "JSON mode")):
        if needed and not capable:
            return (f"cannot handle {what}",
                    f"send the request without {what}, or add a backend that handles them")
    return (f"context window {backend.context_window} tokens < {needs.context_needed} needed",
            "shorten the conversation or lower max_tokens")
