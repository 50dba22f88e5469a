"""LifecycleReconciler: keep requests away from a backend while the model loads or
unloads there (a lifecycle operation), saying how long it should take.

The transitions are in each backend's memory (this replica's operations at once, the
fleet's from the store's sync, off the request path), so the stage costs a dict
lookup per candidate, and nothing at all when no backend has one.
"""

from __future__ import annotations

import time

from nexus.backends.backend import Backend
from nexus.backends.transition import Transition
from nexus.routing.intent import RoutingIntent

STAGE = "LifecycleReconciler"


class LifecycleReconciler:
    name = STAGE

    def reconcile(self, intent: RoutingIntent) -> None:
        model = intent.resolved_model
        if not any(b.transitions for b in intent.candidates):
            return
        intent.keep(STAGE, [b for b in intent.candidates if model not in b.transitions],
                    lambda backend: _moving(backend, backend.transitions[model], model))


def _moving(backend: Backend, transition: Transition, model: str) -> tuple[str, str]:
    eta = transition.eta_seconds(time.time())
    when = f", ready in about {eta:.0f} s" if eta is not None else ""
    done = f" ({transition.progress:.0%} done{when})" if transition.progress else ""
    return (f"{transition.kind} '{model}' (operation {transition.operation}){done}",
            "wait for the operation, or route to a backend that has the model loaded")


def soonest_ready(backends: list[Backend], now: float) -> float | None:
    """Seconds until the first model in transition should be ready, where any says."""
    etas = [eta for b in backends for t in b.transitions.values()
            if t.kind == "loading" and (eta := t.eta_seconds(now)) is not None]
    return min(etas, default=None)
