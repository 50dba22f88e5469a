"""Turn a Reject into the 503 a client reads: every reason, grouped by stage, best hint first."""

from __future__ import annotations

from typing import Any

from nexus.core.errors import NoViableBackend
from nexus.routing.types import RejectionReason

# Stages in the order their suggestions help most: what the client can change in
# its own request first, then what an operator can change, then what only time fixes.
ACTIONABILITY = ("TierReconciler", "RequestAnalyzer", "BudgetReconciler",
                 "PrivacyReconciler", "QualityReconciler", "LifecycleReconciler",
                 "SchedulerReconciler")
RETRY_NOTE = "failed earlier in this request"
# Stages whose rejections pass by themselves: a backend comes back up, frees capacity,
# loads its model, or its error rate falls.
WAITING_HELPS = frozenset({"SchedulerReconciler", "QualityReconciler", "LifecycleReconciler"})


def no_viable_backend(model: str, reasons: list[RejectionReason]) -> NoViableBackend:
    listed = ", ".join(f"{r.backend} ({r.reason})" for r in reasons)
    groups = grouped(reasons)
    extra: dict[str, Any] = {"rejection_reasons": groups}
    if groups:
        extra["suggestion"] = groups[0]["reasons"][0]["suggestion"]
    return NoViableBackend(f"No backend can serve '{model}' now: {listed}", extra=extra)


def grouped(reasons: list[RejectionReason]) -> list[dict[str, Any]]:
    by_stage: dict[str, list[dict[str, str]]] = {}
    for r in sorted(reasons, key=_rank):
        by_stage.setdefault(r.stage, []).append(
            {"backend": r.backend, "reason": r.reason, "suggestion": r.suggestion})
    return [{"stage": stage, "reasons": items} for stage, items in by_stage.items()]


def _rank(reason: RejectionReason) -> tuple[int, int]:
    stage = ACTIONABILITY.index(reason.stage) if reason.stage in ACTIONABILITY \
        else len(ACTIONABILITY)
    return stage, reason.reason == RETRY_NOTE  # a retried backend's hint helps least


def waiting_helps(error: NoViableBackend) -> bool:
    """Whether the 503 can pass by itself: a stage whose reasons time heals refused some
    backend, or the backends could not be asked for their models yet."""
    if error.code == "backends_not_reachable":
        return True
    groups = error.extra.get("rejection_reasons") or []
    return any(group["stage"] in WAITING_HELPS for group in groups)
