"""QualityReconciler: drop backends failing often or slow to first token, unless none is left."""

from __future__ import annotations

from nexus.backends.backend import Backend
from nexus.config.schema import QualityConfig
from nexus.routing.intent import RoutingIntent, Verdict

STAGE = "QualityReconciler"
DEGRADED_FACTOR = 0.5  # score kept by a degraded backend that could not be dropped


class QualityReconciler:
    name = STAGE

    def __init__(self, config: QualityConfig) -> None:
        self.config = config

    def reconcile(self, intent: RoutingIntent) -> None:
        # Only a backend with an error in the window or a slow first token can be degraded:
        # checking that first keeps a healthy fleet's cost to one pass over the list.
        slow = self.config.ttft_penalty_threshold_ms
        suspects = [b for b in intent.candidates
                    if b.metrics.errors or (b.metrics.ttft_ema_ms or 0.0) > slow]
        if not suspects:
            return
        verdicts = {b.name: self._verdict(b) for b in suspects}
        degraded = {name for name, verdict in verdicts.items() if verdict is not None}
        if len(degraded) == len(intent.candidates):  # dropping all would leave nothing
            for backend in intent.candidates:
                verdict = verdicts[backend.name]
                assert verdict is not None
                intent.adjust(backend, STAGE, DEGRADED_FACTOR,
                              f"kept although {verdict[0]}: every candidate is degraded")
            return
        intent.narrow(STAGE, lambda b: verdicts.get(b.name))

    def _verdict(self, backend: Backend) -> Verdict:
        rate = backend.metrics.error_rate(self.config.min_requests)
        if rate is not None and rate > self.config.error_rate_threshold:
            return (f"error rate {rate:.0%} over the last hour exceeds "
                    f"{self.config.error_rate_threshold:.0%}",
                    f"check the backend {backend.name}; it is failing requests")
        ttft = backend.metrics.ttft_ema_ms
        if ttft is not None and ttft > self.config.ttft_penalty_threshold_ms:
            return (f"time to first token {ttft:.0f} ms exceeds "
                    f"{self.config.ttft_penalty_threshold_ms:.0f} ms",
                    f"check the load on {backend.name}")
        return None
