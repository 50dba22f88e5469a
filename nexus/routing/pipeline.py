"""Run the reconcilers in order; optionally record each stage's effect for `explain`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import msgspec

from nexus.routing.intent import RoutingIntent, reasons_of
from nexus.routing.types import RejectionReason, RoutingDecision, ScoreAdjustment


class Reconciler(Protocol):
    name: str

    def reconcile(self, intent: RoutingIntent) -> None:
        """Add constraints, drop candidates with reasons; never add a candidate back."""


class Decider(Protocol):
    name: str

    def reconcile(self, intent: RoutingIntent) -> None: ...

    def decide(self, intent: RoutingIntent) -> RoutingDecision: ...


class StageEffect(msgspec.Struct):
    model: str          # the model this run routed: the requested one or a fallback
    stage: str
    before: list[str]
    after: list[str]
    reasons: list[RejectionReason]
    adjustments: list[ScoreAdjustment]


class Pipeline:
    def __init__(self, stages: Sequence[Reconciler], decider: Decider) -> None:
        self.stages = [*stages, decider]
        self.decider = decider
        self._steps = [stage.reconcile for stage in self.stages]  # bound once, called often

    def run(self, intent: RoutingIntent,
            trace: list[StageEffect] | None = None) -> RoutingDecision:
        if trace is None:
            for step in self._steps:
                step(intent)
        else:
            for stage in self.stages:
                _traced(stage, intent, trace)
        return self.decider.decide(intent)


def _traced(stage: Reconciler, intent: RoutingIntent, trace: list[StageEffect]) -> None:
    before = [b.name for b in intent.candidates]
    drops, adjustments = len(intent.drops), len(intent.adjustments)
    stage.reconcile(intent)
    trace.append(StageEffect(model=intent.resolved_model, stage=stage.name, before=before,
                             after=[b.name for b in intent.candidates],
                             reasons=reasons_of(intent.drops[drops:]),
                             adjustments=intent.adjustments[adjustments:]))
