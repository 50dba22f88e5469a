"""Per-backend outcome counts in minute buckets over the last hour, and time to first token."""

from __future__ import annotations

import time
from collections.abc import Callable

BUCKETS = 60           # one per minute: the quality window is the last hour
TTFT_EMA_ALPHA = 0.2

Clock = Callable[[], float]


class BackendMetrics:
    __slots__ = ("_clock", "_errors", "_minutes", "_successes", "ttft_ema_ms")

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._minutes = [-1] * BUCKETS   # which minute each slot currently counts
        self._successes = [0] * BUCKETS
        self._errors = [0] * BUCKETS
        self.ttft_ema_ms: float | None = None

    def _slot(self) -> int:
        minute = int(self._clock() // 60)
        slot = minute % BUCKETS
        if self._minutes[slot] != minute:  # a new minute reuses the slot of an hour ago
            self._minutes[slot] = minute
            self._successes[slot] = self._errors[slot] = 0
        return slot

    def success(self) -> None:
        self._successes[self._slot()] += 1

    def error(self) -> None:
        self._errors[self._slot()] += 1

    def first_token(self, millis: float) -> None:
        ema = self.ttft_ema_ms
        self.ttft_ema_ms = millis if ema is None else ema + TTFT_EMA_ALPHA * (millis - ema)

    def window(self) -> tuple[int, int]:
        """(successes, errors) over the last hour."""
        oldest = int(self._clock() // 60) - BUCKETS + 1
        live = [i for i, minute in enumerate(self._minutes) if minute >= oldest]
        return sum(self._successes[i] for i in live), sum(self._errors[i] for i in live)

    def error_rate(self, min_requests: int) -> float | None:
        successes, errors = self.window()
        total = successes + errors
        return None if total < min_requests else errors / total
