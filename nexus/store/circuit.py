"""A circuit breaker in front of the shared store, so no request waits on a frozen Redis.

After `threshold` failures in a row (timeouts from a Redis that accepts connections
and never answers, as under SIGSTOP), the circuit opens: callers on the request
path are refused at once and follow their `when_stale` setting. The store's
background loops keep asking; the first command that succeeds closes it.
"""

from __future__ import annotations

import logging

from nexus.store.errors import StoreUnavailable

log = logging.getLogger(__name__)
DEFAULT_THRESHOLD = 3


class Circuit:
    def __init__(self, threshold: int = DEFAULT_THRESHOLD) -> None:
        self.threshold = threshold
        self.failures = 0       # in a row
        self.refused = 0        # calls refused while open, for tests and /metrics

    @property
    def open(self) -> bool:
        return self.failures >= self.threshold

    def check(self) -> None:
        """Raise StoreUnavailable without asking the store while the circuit is open."""
        if self.failures >= self.threshold:
            self.refused += 1
            raise StoreUnavailable("the shared store is not answering (circuit open)")

    def failed(self) -> None:
        self.failures += 1
        if self.failures == self.threshold:
            log.warning("shared store: %d failures in a row, circuit open: requests no longer "
                        "wait on it", self.failures)

    def succeeded(self) -> None:
        if self.failures >= self.threshold:
            log.info("shared store answers again: circuit closed")
        self.failures = 0
