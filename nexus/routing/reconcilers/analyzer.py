"""RequestAnalyzer: resolve aliases, read the request's needs, list the backends that fit."""

from __future__ import annotations

from nexus.backends.backend import Backend
from nexus.backends.registry import Registry
from nexus.backends.windows import CONFIGURED
from nexus.routing.aliases import resolve
from nexus.routing.intent import RoutingIntent
from nexus.routing.policies import EffectivePolicy, PolicySet
from nexus.routing.requirements import requirements_of

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
    model = intent.resolved_model
    if needs.vision or needs.tools or needs.json_mode:
        kept = [b for b in kept if (not needs.vision or b.can(model, "vision"))
                and (not needs.tools or b.can(model, "tools"))
                and (not needs.json_mode or (b.can(model, "json_mode")
                                             and b.honours(needs.json_format)))]
    return [b for b in kept if (w := b.window_tokens(model)) is None or w >= needed]


def _why_not(backend: Backend, intent: RoutingIntent) -> tuple[str, str]:
    if backend.name in intent.tried:
        return "failed earlier in this request", "nothing to do: retrying elsewhere"
    if not backend.openai_api and intent.endpoint != "chat":
        return (f"does not serve /{intent.endpoint}",
                "use an OpenAI-compatible backend for this endpoint")
    needs, model = intent.requirements, intent.resolved_model
    for needed, capability, what in ((needs.vision, "vision", "images"),
                                     (needs.tools, "tools", "tools"),
                                     (needs.json_mode, "json_mode", "JSON mode")):
        if needed and not (backend.can(model, capability) and (
                capability != "json_mode" or backend.honours(needs.json_format))):
            return (f"cannot handle {what}",
                    f"send the request without {what}, or add a backend that handles them")
    window = backend.window(model)
    source = f" ({window.source})" if window and window.source != CONFIGURED else ""
    return (f"context window {window.tokens if window else '?'} tokens{source} < "
            f"{needs.context_needed} needed", "shorten the conversation or lower max_tokens")
