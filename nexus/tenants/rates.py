"""Rate limits over a sliding minute: the types, and the in-process limiter.

A request is admitted when, for each of its subjects (its key, and its key's team),
the requests in the last 60 seconds are fewer than `rpm` and their tokens plus this
request's estimate are at most `tpm`. The same rule runs in the store's `rate.lua` for
a fleet (exact across replicas) and here for one replica, or for a replica's local
share of a limit while the shared store cannot be asked.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import msgspec

WINDOW_MS = 60_000


class RateSubject(msgspec.Struct, frozen=True):
    name: str          # "key:alice", "team:research": also part of its Redis keys' names
    rpm: int = 0       # 0: no request limit
    tpm: int = 0       # 0: no token limit
    slot: str = ""     # whose hash slot its counters live in ("": its own); a key in a
                       # team is counted in its team's, as one check covers both

    @property
    def owner(self) -> str:
        return self.slot or self.name


class Block(Protocol):
    """A replica's leased block of a key's limits (an allowance), as a check carries it:
    who asked for it. Only the allowances' own code looks further inside."""

    lease_id: str


class RateCheck(msgspec.Struct):
    request_id: str
    tokens: int        # the estimate: input plus max_tokens (or the default)
    subjects: tuple[RateSubject, ...]
    allowance: Block | None = None  # the block it was admitted from, if one
    local: bool = False  # judged by the replica's local share: the store was away


class Quota(msgspec.Struct, frozen=True):
    """One subject's standing after the check, for the x-ratelimit-* headers."""

    subject: RateSubject
    remaining_requests: int
    remaining_tokens: int
    reset_ms: int      # until the oldest request in the window leaves it


class RateVerdict(msgspec.Struct, frozen=True):
    allowed: bool
    quotas: tuple[Quota, ...] = ()
    refused_by: str = ""     # the subject's name
    refused_limit: str = ""  # "requests" or "tokens"
    retry_after_ms: int = 0
    headers: dict[str, str] | None = None  # the x-ratelimit-* headers, when made already


class _Log:
    __slots__ = ("entries", "tokens")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, str, int]] = deque()  # (ms, request id, tokens)
        self.tokens = 0

    def expire(self, now: float) -> None:
        while self.entries and self.entries[0][0] <= now - WINDOW_MS:
            self.tokens -= self.entries.popleft()[2]


class LocalLimiter:
    """The sliding-window rule in memory. `share()` divides every limit (by the number
    of live replicas, when standing in for the fleet's store)."""

    def __init__(self, clock: Callable[[], float] = time.time,
                 share: Callable[[], int] = lambda: 1) -> None:
        self._clock = clock
        self._share = share
        self._logs: dict[str, _Log] = {}

    def check(self, check: RateCheck) -> RateVerdict:
        now = self._clock() * 1000
        share = max(1, self._share())
        logs = [self._logs.setdefault(s.name, _Log()) for s in check.subjects]
        for subject, log in zip(check.subjects, logs, strict=True):
            log.expire(now)
            rpm, tpm = _part(subject.rpm, share), _part(subject.tpm, share)
            limit = "requests" if rpm and len(log.entries) + 1 > rpm else \
                "tokens" if tpm and log.tokens + check.tokens > tpm else ""
            if limit:
                oldest = log.entries[0][0] if log.entries else now
                return RateVerdict(False, (_quota(subject, log, now, share),),
                                   refused_by=subject.name, refused_limit=limit,
                                   retry_after_ms=max(1, int(oldest + WINDOW_MS - now)))
        for log in logs:
            log.entries.append((now, check.request_id, check.tokens))
            log.tokens += check.tokens
        return RateVerdict(True, tuple(_quota(s, log, now, share)
                                       for s, log in zip(check.subjects, logs, strict=True)))

    def settle(self, check: RateCheck, actual_tokens: int) -> None:
        """Replace the estimate with what the request used."""
        for subject in check.subjects:
            log = self._logs.get(subject.name)
            if log is None:
                continue
            for index, (at, request_id, tokens) in enumerate(log.entries):
                if request_id == check.request_id:
                    log.entries[index] = (at, request_id, actual_tokens)
                    log.tokens += actual_tokens - tokens
                    break

    def usage(self, name: str) -> tuple[int, int]:
        """(requests, tokens) of a subject in the last minute."""
        log = self._logs.get(name)
        if log is None:
            return 0, 0
        log.expire(self._clock() * 1000)
        return len(log.entries), log.tokens


def _part(limit: int, share: int) -> int:
    return max(1, limit // share) if limit else 0


def _quota(subject: RateSubject, log: _Log, now: float, share: int) -> Quota:
    rpm, tpm = _part(subject.rpm, share), _part(subject.tpm, share)
    oldest = log.entries[0][0] if log.entries else now
    return Quota(subject, rpm - len(log.entries) if rpm else -1,
                 tpm - log.tokens if tpm else -1, int(oldest + WINDOW_MS - now))
