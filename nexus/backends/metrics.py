"""Per-backend outcome counts in minute buckets over the last hour, and time to first token.

Hour totals are kept as running sums: a bucket leaves them when its minute falls out
of the window, so reading an error rate costs the same for any traffic history.
"""

from __future__ import annotations

import time
from collections.abc import Callable

BUCKETS = 60           # one per minute: the quality window is the last hour
TTFT_EMA_ALPHA = 0.2

Clock = Callable[[], float]


class BackendMetrics:
    __slots__ = ("_clock", "_errors", "_minute", "_successes", "errors", "local_errors",
                 "local_successes", "local_ttft_ema_ms", "remote_errors", "remote_successes",
                 "remote_ttft", "successes", "ttft_ema_ms")

    def __init__(self, clock: Clock = time.time) -> None:
        self._clock = clock
        self._minute = int(clock() // 60)   # the newest minute the buckets hold
        self._successes = [0] * BUCKETS
        self._errors = [0] * BUCKETS
        self.local_successes = 0            # this replica's, over the last hour
        self.local_errors = 0
        self.remote_successes = 0           # the other replicas', as last published
        self.remote_errors = 0
        self.successes = 0                  # the fleet's: local + remote, what routing reads
        self.errors = 0
        self.local_ttft_ema_ms: float | None = None
        self.remote_ttft: tuple[float, int] = (0.0, 0)  # others' averages: (sum, count)
        self.ttft_ema_ms: float | None = None  # the fleet's: what routing reads

    def _advance(self) -> int:
        """Move the window to now, dropping minutes that left it; returns the slot of now."""
        minute = int(self._clock() // 60)
        if minute > self._minute:
            for step in range(1, min(minute - self._minute, BUCKETS) + 1):
                slot = (self._minute + step) % BUCKETS
                self.local_successes -= self._successes[slot]
                self.local_errors -= self._errors[slot]
                self._successes[slot] = self._errors[slot] = 0
            self._minute = minute
            self._sum()
        return self._minute % BUCKETS

    def _sum(self) -> None:
        self.successes = self.local_successes + self.remote_successes
        self.errors = self.local_errors + self.remote_errors

    def set_remote(self, successes: int, errors: int, ttft_total: float = 0.0,
                   ttft_count: int = 0) -> None:
        """The other replicas' hour totals and first-token averages for this backend."""
        self.remote_successes, self.remote_errors = successes, errors
        self._sum()
        self.remote_ttft = (ttft_total, ttft_count)
        self.ttft_ema_ms = fleet_mean(self.local_ttft_ema_ms, ttft_total, ttft_count)

    def success(self) -> None:
        self._successes[self._advance()] += 1
        self.local_successes += 1
        self.successes += 1

    def error(self) -> None:
        self._errors[self._advance()] += 1
        self.local_errors += 1
        self.errors += 1

    def first_token(self, millis: float) -> None:
        self.local_ttft_ema_ms = ema_step(self.local_ttft_ema_ms, millis, TTFT_EMA_ALPHA)
        self.ttft_ema_ms = fleet_mean(self.local_ttft_ema_ms, *self.remote_ttft)

    def buckets(self) -> tuple[int, list[int], list[int]]:
        """(newest minute, successes, errors) per minute of this replica's last hour,
        oldest first: what a replica publishes for the fleet to merge."""
        slot = self._advance()
        order = [(slot + 1 + i) % BUCKETS for i in range(BUCKETS)]
        return (self._minute, [self._successes[i] for i in order],
                [self._errors[i] for i in order])

    def window(self) -> tuple[int, int]:
        """(successes, errors) over the last hour, fleet-wide."""
        self._advance()
        return self.successes, self.errors

    def error_rate(self, min_requests: int) -> float | None:
        self._advance()
        total = self.successes + self.errors
        return None if total < min_requests else self.errors / total


def ema_step(ema: float | None, sample: float, alpha: float) -> float:
    """An exponential moving average after one more sample (the first sample starts it)."""
    return sample if ema is None else ema + alpha * (sample - ema)


def fleet_mean(local: float | None, remote_total: float, remote_count: int) -> float | None:
    """Each replica's average counts once; None when nobody has measured yet."""
    count = remote_count + (local is not None)
    return None if not count else ((local or 0.0) + remote_total) / count


def recent(newest_minute: int, counts: list[int], now_minute: int) -> int:
    """The sum of published minute counts (oldest first) that fall in the hour to now."""
    oldest = now_minute - BUCKETS + 1
    first = newest_minute - len(counts) + 1
    return sum(count for i, count in enumerate(counts) if first + i >= oldest)
