"""Every attempt's outcome, recorded in one place: the one writer of backend state on
the request path and of active check results.

Only evidence that a backend is down changes its health: a refused or reset
connection, a timeout, a stream that broke, a failed active check. An HTTP answer
is the backend working: a 4xx never counts against it, and a 5xx or an empty
stream only feeds its error rate, and only when the request did not fail the
same way on every candidate it tried (then the request is the problem, not the
backends), so no client can push a backend out of rotation by what it sends.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.discovery import Discovery
from nexus.backends.engine import EngineSignals
from nexus.backends.health import Health
from nexus.backends.stats import Stats
from nexus.core.types import Usage

log = logging.getLogger(__name__)


class Outcome(enum.Enum):
    SERVED = "served"
    UPSTREAM_ERROR = "upstream_error"      # the backend answered with an HTTP error
    OVERLOADED = "overloaded"              # it answered 429/529: busy, not down
    LOADING = "loading"                    # it answered that a model is loading
    FAILED_BEFORE_FIRST_BYTE = "failed_before_first_byte"  # refused, reset, unreadable
    STREAM_BROKE = "stream_broke"          # after the client had the first byte
    TIMED_OUT = "timed_out"

    __hash__ = object.__hash__


DOWN_EVIDENCE = frozenset({Outcome.FAILED_BEFORE_FIRST_BYTE, Outcome.STREAM_BROKE,
                           Outcome.TIMED_OUT})


class Answer(msgspec.Struct, frozen=True):
    """An HTTP error a backend answered with, held until the request ends."""

    backend: Backend
    status: int
    kind: str  # the error's code or type: with the status, what "the same way" means
    failing: bool  # a failure of the backend's (5xx, empty stream), not a refusal (4xx)


class OutcomeRecorder:
    def __init__(self, stats: Stats | None = None) -> None:
        self.stats = stats or Stats()

    # -- load --------------------------------------------------------------------------
    @staticmethod
    @contextmanager
    def in_flight(backend: Backend) -> Iterator[None]:
        state = backend.state
        state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1

    # -- request outcomes --------------------------------------------------------------
    @staticmethod
    def first_token(backend: Backend, millis: float) -> None:
        backend.state.observe_latency(millis)
        backend.state.metrics.first_token(millis)

    def served(self, backend: Backend, usage: Usage | None, estimated: bool = False) -> None:
        state = backend.state
        state.metrics.success()
        if state.health.state is Health.HEALTHY:  # the common case: nothing to log
            state.health.success()
        else:
            with self._watching(backend):
                state.health.success()
        self.stats.response(backend.name, 200, usage, estimated)

    def answered(self, backend: Backend, status: int, kind: str) -> Answer:
        """An HTTP error from the backend (or an empty stream, `status` 200): counted in
        stats now; whether it counts in the error rate, `settle` decides when the
        request ends."""
        self.stats.response(backend.name, status, None)
        return Answer(backend, status, kind, failing=status >= 500 or status < 400)

    def failed(self, backend: Backend, outcome: Outcome, reason: str,
               refused: bool = False) -> None:
        """Evidence that the backend is down; `refused`: it would not even connect, so
        it leaves rotation at once instead of after the failure threshold."""
        assert outcome in DOWN_EVIDENCE, outcome
        backend.state.metrics.error()
        self.stats.failure(backend.name, outcome.value)
        with self._watching(backend):
            if refused:
                backend.state.health.unreachable(reason)
            else:
                backend.state.health.failure(reason)

    def overloaded(self, backend: Backend, status: int) -> None:
        self.stats.response(backend.name, status, None)
        self.stats.failure(backend.name, Outcome.OVERLOADED.value)

    def loading(self, backend: Backend, eta_seconds: float | None) -> None:
        self.stats.failure(backend.name, Outcome.LOADING.value)
        with self._watching(backend):
            backend.state.health.loading(eta_seconds)

    def settle(self, answers: list[Answer], served: bool) -> None:
        """A request's HTTP errors, once it ended: each counts in its backend's error
        rate unless every candidate tried failed the same way and none served it."""
        if not answers:
            return
        first = answers[0]
        same = all(a.status == first.status and a.kind == first.kind for a in answers)
        if served or not same:
            for answer in answers:
                if answer.failing:
                    answer.backend.state.metrics.error()
                    self.stats.failure(answer.backend.name, Outcome.UPSTREAM_ERROR.value)

    # -- active checks -----------------------------------------------------------------
    def checked(self, backend: Backend, result: Discovery) -> None:
        with self._watching(backend):
            health = backend.state.health
            if result.loading:
                health.loading(result.loading_eta)
            elif result.models is not None:
                backend.set_discovered(result.models, result.windows, result.capabilities,
                                       result.sizes)
                health.success()
            else:
                health.failure(result.error)

    @staticmethod
    def engine(backend: Backend, signals: EngineSignals) -> None:
        """What the backend's engine said of its load (a scrape, or the leader's)."""
        backend.state.engine = signals

    @staticmethod
    @contextmanager
    def _watching(backend: Backend) -> Iterator[None]:
        """Log a health state change made inside the block, with its cause."""
        health = backend.state.health
        before = health.state
        yield
        if health.state is not before:
            log.info("backend %s: %s -> %s (%s)", backend.name, before.value,
                     health.state.value, health.reason)
