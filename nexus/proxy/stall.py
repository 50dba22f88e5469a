"""The request timeout: a backend exchange that goes quiet for too long is ended.

aiohttp's own timeouts arm an event-loop timer for every request and re-arm one on
every read of a stream, a timer per token (under callgrind, about 4 % of a streamed
request's instructions). Here one sweep looks at every open exchange a few times per
timeout instead, and a read costs a counter increment. An exchange is ended between
`limit` and `limit + period` seconds after the backend last sent anything, or after
the request went out if it never answered:

- still waiting for the response's headers: its task is cancelled, and the
  forwarder turns that into a timeout of this backend (the next candidate may try);
- reading the body: the body's reader fails with a timeout, which the forwarder
  (whole answers) or the stream relay (an SSE error event) already handle.

While the relay waits on the client (a write that cannot go out: the client reads
nothing), the backend is not the one silent: that time never counts against it. A
client that takes none of a write for `write_limit` seconds is cut instead: the
relay's task is cancelled, and the relay turns that into the client gone.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import aiohttp

from nexus.client import UpstreamResponse
from nexus.core.tasks import ticks

MAX_PERIOD_SECONDS = 1.0


class Exchange:
    """One request to one backend, as the watch sees it."""

    __slots__ = ("cancelling", "client_stuck", "quiet_since", "reads", "response", "seen",
                 "seen_writes", "stalled", "task", "writes", "writing", "writing_since")

    def __init__(self, task: asyncio.Task[object] | None, now: float) -> None:
        self.task = task
        self.cancelling = task.cancelling() if task is not None else 0  # cancels before ours
        self.response: UpstreamResponse | None = None  # set when headers arrive
        self.reads = 0          # bumped by whoever reads the body: proof of life
        self.seen = 0           # `reads` as the last sweep saw it
        self.quiet_since = now
        self.stalled = False
        self.writing = False    # set by the relay while a write to the client is pending
        self.writes = 0         # writes done: proof the client reads
        self.seen_writes = -1
        self.writing_since = now
        self.client_stuck = False  # ended because the client read nothing for write_limit

    def cancel_was_ours_alone(self) -> bool:
        """Called with a CancelledError in hand: True when it is the watch's cancel and
        nobody else's (then it is spent, and the caller reports a timeout); False when
        someone else also cancelled the task (shutdown), which must go on."""
        if not self.stalled or self.task is None:
            return False
        return self.task.uncancel() <= self.cancelling


class StallWatch:
    def __init__(self, limit_seconds: float, clock: Callable[[], float] = time.monotonic,
                 write_limit_seconds: float | None = None) -> None:
        self.limit = limit_seconds
        self.write_limit = limit_seconds if write_limit_seconds is None \
            else write_limit_seconds
        self.period = min(MAX_PERIOD_SECONDS, limit_seconds / 4, self.write_limit / 4)
        self._clock = clock
        self._open: dict[Exchange, None] = {}  # an ordered set

    def open(self) -> Exchange:
        exchange = Exchange(asyncio.current_task(), self._clock())
        self._open[exchange] = None
        return exchange

    def close(self, exchange: Exchange) -> None:
        self._open.pop(exchange, None)

    def __len__(self) -> int:
        return len(self._open)

    def sweep(self) -> int:
        """End the exchanges quiet for `limit` seconds; how many were ended."""
        now, ended = self._clock(), 0
        for exchange in self._open:
            if exchange.writing:
                ended += self._sweep_writing(exchange, now)
            elif exchange.reads != exchange.seen:
                exchange.seen, exchange.quiet_since = exchange.reads, now
            elif not exchange.stalled and now - exchange.quiet_since >= self.limit:
                self._end(exchange)
                ended += 1
        return ended

    def _sweep_writing(self, exchange: Exchange, now: float) -> int:
        """The exchange waits on its client: the backend's silence clock stands still,
        and a client that took nothing for `write_limit` is cut."""
        exchange.quiet_since = now
        if exchange.writes != exchange.seen_writes:
            exchange.seen_writes, exchange.writing_since = exchange.writes, now
        elif not exchange.stalled and now - exchange.writing_since >= self.write_limit:
            exchange.stalled = exchange.client_stuck = True
            if exchange.task is not None:
                exchange.task.cancel()
            return 1
        return 0

    async def run_forever(self) -> None:
        async for _ in ticks(self.period):
            self.sweep()

    def _end(self, exchange: Exchange) -> None:
        exchange.stalled = True
        if exchange.response is not None:
            exchange.response.content.set_exception(aiohttp.ServerTimeoutError(
                f"the backend sent nothing for {self.limit:g}s"))
        elif exchange.task is not None:
            exchange.task.cancel()
