"""One error for everything the shared store can fail with, mapped in one place.

Code outside nexus/store catches `StoreError` and never sees redis-py's own
exceptions, as in alisaifee/limits' storage layer.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout


class StoreError(Exception):
    """The shared store failed, timed out or could not be reached."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class StoreUnavailable(StoreError):
    """The store's circuit is open after repeated failures: it was not asked."""


def store_error(exc: RedisError) -> StoreError:
    return StoreError(str(exc) or exc.__class__.__name__, isinstance(exc, RedisTimeout))


@contextmanager
def store_errors() -> Iterator[None]:
    """Raise redis-py's errors from the block as StoreError."""
    try:
        yield
    except RedisError as exc:
        raise store_error(exc) from exc
