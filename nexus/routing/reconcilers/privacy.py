"""PrivacyReconciler: restricted traffic only ever reaches restricted-zone backends."""

from __future__ import annotations

from nexus.backends.backend import Backend
from nexus.routing.intent import RoutingIntent

STAGE = "PrivacyReconciler"


class PrivacyReconciler:
    name = STAGE

    def reconcile(self, intent: RoutingIntent) -> None:
        intent.restricted = intent.restricted or intent.policy.restricted \
            or intent.headers.restricted
        if intent.restricted:
            why = _source(intent)
            intent.keep(STAGE, [b for b in intent.candidates if b.restricted_zone],
                        lambda backend: _open_zone(backend, why))


def _source(intent: RoutingIntent) -> str:
    if intent.policy.restricted:
        return f"policy {', '.join(repr(s) for s in intent.policy.sources)} marks it restricted"
    return "the request asked for restricted handling (X-Nexus-Privacy)"


def _open_zone(backend: Backend, why: str) -> tuple[str, str]:
    return (f"zone '{backend.config.zone}' may not receive restricted traffic: {why}",
            "serve the model from a backend with zone = \"restricted\"")
