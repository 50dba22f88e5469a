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

    __slots__ = ("cancelling", "quiet_since", "reads", "response", "seen", "stalled", "task")

    def __init__(self, task: asyncio.Task[object] | None, now: float) -> None:
        self.task = task
        self.cancelling = task.cancelling() if task is not None else 0  # cancels before ours
        self.response: UpstreamResponse | None = None  # set when headers arrive
        self.reads = 0          # bumped by whoever reads the body: proof of life
        self.seen = 0           # `reads` as the last sweep saw it
        self.quiet_since = now
        self.stalled = False

    def cancel_was_ours_alone(self) -> bool:
        """Called with a CancelledError in hand: True when it is the watch's cancel and
        nobody else's (then it is spent, and the caller reports a timeout); False when
        someone else also cancelled the task (shutdown), which must go on."""
        if not self.stalled or self.task is None:
            return False
        return self.task.uncancel() <= self.cancelling


class StallWatch:
    def __init__(self, limit_seconds: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit_seconds
        self.period = min(MAX_PERIOD_SECONDS, limit_seconds / 4)
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
            if exchange.reads != exchange.seen:
                exchange.seen, exchange.quiet_since = exchange.reads, now
            elif not exchange.stalled and now - exchange.quiet_since >= self.limit:
                self._end(exchange)
                ended += 1
        return ended

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
