"""Allowances: a replica's lease on a block of a busy key's rate limits.

Every limited request otherwise waits for a `rate.lua` call. For a key far from its
limits, the call that admits one request may also lease this replica a block of
request slots (and tokens), counted in Redis at once and scored as if used at the
end of the allowance's period, so a request admitted from the block later is still
counted for the whole minute after it. Requests then pass on this replica with no
call at all, and the sliding window's rule holds across the fleet: nothing is let
past a limit.

Redis grants a block only while each of the request's subjects stays at or under
half of each of its limits with the block counted, so near a limit every request is
checked one by one, as before. The block follows the key's own pace on this replica
(its arrivals since the last ask, over at most a second): a period's worth at 0.25 s
for a busy key, and for a slower one the smallest block worth having (8 slots) over
as long as it takes, up to 2 s; a key slower than that is checked one by one. An
allowance closes when it is used up or its period ends, and its unused slots and
tokens go back with the next call; a replica with an unused block can refuse another's
request early only within one period of the key crossing half its limit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from nexus.tenants.headers import ratelimit_headers, tightest
from nexus.tenants.rates import Quota, RateCheck, RateSubject, RateVerdict

ALLOWANCE_SECONDS = 0.25  # a busy key's allowance period: how long its slots may be used
MAX_PERIOD_SECONDS = 2.0  # a slower key's, at most
PACE_FLOOR_SECONDS = 0.1  # a pace is measured over at least this long
PACE_WINDOW_SECONDS = 1.0  # and at most this long: what came before is not its pace now
MIN_SLOTS = 8              # a smaller block saves less than it costs to return
MAX_SLOTS = 1000
MAX_KEYS = 10_000



class Ask:
    """A block asked for with one request's check: `slots` more requests, `tokens` more
    tokens; answered (granted or not) by the call that carries the check."""

    __slots__ = ("answered", "error", "period", "slots", "tokens")

    def __init__(self, slots: int, tokens: int, period: float = ALLOWANCE_SECONDS) -> None:
        self.slots = slots
        self.tokens = tokens
        self.period = period  # seconds its slots may be used, once granted
        self.answered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: BaseException | None = None  # its call failed: so do its waiters'


class Allowance:
    """A granted block. Slot 0 is the request that asked for it; Redis holds one entry
    `<id>.0:<tokens>` carrying the block's tokens and `<id>.<i>:0` for the others."""

    __slots__ = (
        "closed",
        "ends_at",
        "granted_tokens",
        "headers",
        "lease_id",
        "recorded_tokens",
        "requests_left",
        "returned",
        "slots",
        "subjects",
        "tokens_left",
        "tokens_limited",
        "used",
        "used_tokens",
    )

    def __init__(self, check: RateCheck, ask: Ask, quotas: tuple[Quota, ...],
                 now: float) -> None:
        self.lease_id = check.request_id
        self.subjects = check.subjects
        self.slots = ask.slots + 1
        self.used = 1
        self.granted_tokens = self.recorded_tokens = check.tokens + ask.tokens
        self.used_tokens = check.tokens  # estimates, each replaced by its actual when settled
        self.returned = False            # its unused slots have gone back
        self.closed = False
        self.ends_at = now + ask.period
        self.headers = ratelimit_headers(quotas)  # the subjects' standing at the grant
        requests, tokens = tightest(quotas)
        self.requests_left = requests.remaining_requests if requests else None
        self.tokens_left = tokens.remaining_tokens if tokens else None
        self.tokens_limited = any(s.tpm for s in check.subjects)

    def admits(self, tokens: int) -> bool:
        return self.used < self.slots and (
            not self.tokens_limited or self.used_tokens + tokens <= self.granted_tokens)

    def verdict(self) -> RateVerdict:
        """The standing to report: the grant's, plus what is still unused in the block
        (counted in Redis, but still this key's to use). The limits and resets are the
        grant's, made once: a block lasts 2 s at most, and resets are whole seconds."""
        headers = self.headers.copy()
        if self.requests_left is not None:
            headers["x-ratelimit-remaining-requests"] = \
                str(max(0, self.requests_left + self.slots - self.used))
        if self.tokens_left is not None:
            headers["x-ratelimit-remaining-tokens"] = \
                str(max(0, self.tokens_left + self.granted_tokens - self.used_tokens))
        return RateVerdict(True, headers=headers)


class AllowanceWrite:
    """What one settlement call changes of an allowance's entries in Redis: the slot 0
    entry's tokens from `recorded` to `tokens`, and the unused slots `drop_from` up to
    (not including) `drop_to` removed (none when they are equal)."""

    __slots__ = ("allowance", "drop_from", "drop_to", "recorded", "tokens")

    def __init__(self, allowance: Allowance) -> None:
        self.allowance = allowance
        self.recorded, self.tokens = allowance.recorded_tokens, allowance.used_tokens
        already = allowance.returned
        self.drop_from = allowance.slots if already else allowance.used
        self.drop_to = allowance.slots


class _Pace:
    """One key's requests on this replica (its subjects together), its open allowance
    and the ask that is out."""

    __slots__ = ("allowance", "arrivals", "ask", "quiet_until", "since", "tokens")

    def __init__(self, now: float) -> None:
        self.arrivals = self.tokens = 0
        self.since = now
        self.allowance: Allowance | None = None
        self.ask: Ask | None = None
        self.quiet_until = 0.0  # after a refused ask: none until then


class Allowances:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 wake: Callable[[], None] = lambda: None, enabled: bool = True) -> None:
        self._clock = clock
        self._enabled = enabled  # off: never an ask, so every check goes to Redis
        self._wake = wake  # the settlement writer has something to send
        self._paces: dict[tuple[RateSubject, ...], _Pace] = {}
        self._dirty: dict[int, Allowance] = {}  # closed, with a change Redis must hear

    def take(self, check: RateCheck, arrival: bool = True) -> RateVerdict | None:
        """Admitted from this key's open allowance, or None: ask Redis."""
        now = self._clock()
        pace = self._pace(check.subjects, now)
        if arrival:
            pace.arrivals += 1
            pace.tokens += check.tokens
        allowance = pace.allowance
        if allowance is None:
            return None
        if now >= allowance.ends_at or not allowance.admits(check.tokens):
            self._end(pace)
            return None
        allowance.used += 1
        allowance.used_tokens += check.tokens
        check.allowance = allowance
        verdict = allowance.verdict()
        if allowance.used == allowance.slots:
            self._end(pace)
        return verdict

    def pending(self, check: RateCheck) -> Ask | None:
        """The ask that is out for this key, if one is."""
        pace = self._paces.get(check.subjects)
        return pace.ask if pace is not None else None

    def ask(self, check: RateCheck) -> Ask | None:
        """A block to ask for with this check, sized to the key's pace here."""
        if not self._enabled:
            return None
        now = self._clock()
        pace = self._pace(check.subjects, now)
        if pace.ask is not None or pace.allowance is not None or now < pace.quiet_until:
            return None
        elapsed = max(now - pace.since, PACE_FLOOR_SECONDS)
        per_second = pace.arrivals / elapsed
        slots, period = min(MAX_SLOTS, int(per_second * ALLOWANCE_SECONDS)), ALLOWANCE_SECONDS
        if slots < MIN_SLOTS:  # slower: the smallest block, over as long as it takes
            slots, period = MIN_SLOTS, MIN_SLOTS / per_second
        if pace.arrivals < 2 or period > MAX_PERIOD_SECONDS:
            if elapsed >= PACE_WINDOW_SECONDS:  # a quiet key: measure afresh
                pace.arrivals = pace.tokens = 0
                pace.since = now
            return None
        limited = any(s.tpm for s in check.subjects)
        tokens = -(-pace.tokens * slots // pace.arrivals) if limited else 0
        pace.arrivals = pace.tokens = 0
        pace.since = now
        pace.ask = Ask(slots, tokens, period)
        return pace.ask

    def answered(self, check: RateCheck, ask: Ask, granted: RateVerdict | None,
                 error: BaseException | None = None) -> Allowance | None:
        """The call carrying `ask` came back: with the grant's verdict, or None (refused:
        over the half), or failed with `error`. Once only: a batch that failed after
        some of its calls answered (a cluster's) leaves those as they were."""
        if ask.answered.done():
            return None
        now = self._clock()
        pace = self._paces.get(check.subjects)
        allowance = None
        if granted is not None:
            allowance = Allowance(check, ask, granted.quotas, now)
            check.allowance = allowance
        if pace is not None and pace.ask is ask:
            pace.ask = None
            if allowance is None:
                pace.quiet_until = now + ALLOWANCE_SECONDS
            else:
                pace.allowance = allowance
        elif allowance is not None:  # its key's pace was dropped meanwhile
            self.close(allowance)
        ask.error = error
        ask.answered.set_result(None)
        return allowance

    def expire(self, allowance: Allowance) -> None:
        """Its period is over (a timer calls this): its unused part goes back."""
        pace = self._paces.get(allowance.subjects)
        if pace is not None and pace.allowance is allowance:
            self._end(pace)
        self.close(allowance)  # a block its pace no longer holds (used up, replaced)

    def close_all(self) -> None:
        """Every open allowance closes (the replica is stopping): their unused parts go
        back rather than counting for a minute."""
        for pace in self._paces.values():
            self._end(pace)

    def close(self, allowance: Allowance) -> None:
        if not allowance.closed:
            allowance.closed = True
            self._changed(allowance)

    def settle(self, check: RateCheck, actual_tokens: int) -> None:
        """A request admitted from an allowance used `actual_tokens`: its estimate in the
        block is replaced (an open block may then admit more)."""
        allowance = check.allowance
        assert isinstance(allowance, Allowance)
        allowance.used_tokens += actual_tokens - check.tokens
        if allowance.closed:
            self._changed(allowance)

    @property
    def has_writes(self) -> bool:
        return bool(self._dirty)

    def writes(self) -> list[AllowanceWrite]:
        """The changes to send, taken as sent: a failed call leaves Redis counting more
        than was used (over, never under), as a dropped settlement does."""
        writes = []
        for allowance in self._dirty.values():
            write = AllowanceWrite(allowance)
            if write.recorded != write.tokens or write.drop_from < write.drop_to:
                writes.append(write)
            allowance.recorded_tokens, allowance.returned = write.tokens, True
        self._dirty.clear()
        return writes

    def _end(self, pace: _Pace) -> None:
        """The key's open allowance, if it has one, closes and is forgotten."""
        if pace.allowance is not None:
            self.close(pace.allowance)
            pace.allowance = None

    def _changed(self, allowance: Allowance) -> None:
        self._dirty[id(allowance)] = allowance
        self._wake()

    def _pace(self, subjects: tuple[RateSubject, ...], now: float) -> _Pace:
        pace = self._paces.get(subjects)
        if pace is None:
            if len(self._paces) >= MAX_KEYS:  # limits changed often: start over
                self.close_all()
                self._paces.clear()
            pace = self._paces[subjects] = _Pace(now)
        return pace
