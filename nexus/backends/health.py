"""The health state machine of one backend, driven by active checks and passive marks."""

from __future__ import annotations

import enum
import time

from nexus.core.masking import mask_urls_in


class Health(enum.Enum):
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"    # not checked yet: routable, so the first requests need not wait
    LOADING = "loading"    # the backend is loading a model; `eta` says until when, if told


ROUTABLE = frozenset({Health.HEALTHY, Health.UNKNOWN})
_HEALTHY, _UNHEALTHY = Health.HEALTHY, Health.UNHEALTHY  # plain globals: no descriptor call


class HealthTracker:
    """Counts consecutive outcomes and moves between states at the configured thresholds."""

    # `routable` and `down` are plain slots kept in step with `state`: routing reads
    # them for every candidate, and an Enum comparison costs several times more.
    __slots__ = ("_state", "changed_at", "down", "eta", "failure_threshold", "failures",
                 "reason", "recovery_threshold", "routable", "successes")

    def __init__(self, failure_threshold: int, recovery_threshold: int) -> None:
        self.failure_threshold = failure_threshold
        self.recovery_threshold = recovery_threshold
        self.state: Health = Health.UNKNOWN
        self.reason = "not checked yet"
        self.failures = 0
        self.successes = 0
        self.eta: float | None = None  # unix time the model should be loaded by
        self.changed_at: float | None = None  # unix time the state last changed

    @property
    def state(self) -> Health:
        return self._state

    @state.setter
    def state(self, state: Health) -> None:
        self._state = state
        self.routable = state in ROUTABLE
        self.down = state is Health.UNHEALTHY

    def success(self) -> None:
        self.failures = 0
        self.successes += 1
        if self._state is _HEALTHY:  # the common case, once per request: nothing changes
            return
        if self._state is not _UNHEALTHY or self.successes >= self.recovery_threshold:
            self._set(Health.HEALTHY, "ok")

    def failure(self, reason: str) -> None:
        """A failed check or request: unhealthy once failures reach the threshold."""
        self.successes = 0
        self.failures += 1
        if self.state is Health.UNKNOWN or self.failures >= self.failure_threshold:
            self._set(Health.UNHEALTHY, reason)

    def unreachable(self, reason: str) -> None:
        """The backend refused or dropped the connection: out of rotation at once."""
        self.successes = 0
        self.failures = max(self.failures + 1, self.failure_threshold)
        self._set(Health.UNHEALTHY, reason)

    def loading(self, eta_seconds: float | None) -> None:
        self.successes = 0
        self._set(Health.LOADING, "loading model")
        self.eta = None if eta_seconds is None else time.time() + eta_seconds

    def adopt(self, state: Health, reason: str, eta: float | None) -> None:
        """Take the state the fleet's leader observed (its checks applied the thresholds)."""
        self.failures = self.successes = 0
        self._set(state, reason)
        self.eta = eta

    def _set(self, state: Health, reason: str) -> None:
        if state is not self._state:
            self.changed_at = time.time()
        self.state = state
        self.reason = mask_urls_in(reason)  # shown to clients: no credential of a URL
        if state is not Health.LOADING:
            self.eta = None
