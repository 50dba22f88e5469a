"""Tasks that cannot die quietly: background loops started, watched and stopped in one place,
and the asyncio helpers they need.

A loop that raises is logged with its traceback and started again after a backoff;
one that keeps failing shows in /health. Modelled on kopf's `aiotasks` guards and
arq's drift-free `poll()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Coroutine

import msgspec

log = logging.getLogger(__name__)
BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
HEALED_AFTER_SECONDS = 60.0  # a run this long before a crash starts the backoff anew

LoopFactory = Callable[[], Coroutine[object, object, None]]


class LoopStatus(msgspec.Struct, kw_only=True):
    name: str
    restarts: int = 0
    failing: int = 0          # crashes in a row; 0 once a run lasts HEALED_AFTER_SECONDS
    last_error: str = ""


async def ticks(period: float) -> AsyncIterator[float]:
    """Yield every `period` seconds on the loop's clock, drift-free: the time the body
    takes is not added to the period, and a late tick does not cause a burst."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        yield next_at
        next_at += period
        now = loop.time()
        if next_at < now:
            next_at = now
        await asyncio.sleep(next_at - now)


class Supervisor:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.loops: dict[str, LoopStatus] = {}

    def start(self, name: str, factory: LoopFactory) -> None:
        """Run `factory()` as a task named `name`, starting it again whenever it raises."""
        self.loops[name] = LoopStatus(name=name)
        self._tasks[name] = asyncio.create_task(self._guard(name, factory), name=name)

    def failing(self) -> list[LoopStatus]:
        return [status for status in self.loops.values() if status.failing]

    async def stop(self, *names: str) -> None:
        """Cancel the named loops (all of them by default) and wait for them to end."""
        tasks = [self._tasks.pop(n) for n in (names or list(self._tasks)) if n in self._tasks]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    @contextlib.asynccontextmanager
    async def running(self, name: str, factory: LoopFactory) -> AsyncIterator[None]:
        """The loop runs while the block does."""
        self.start(name, factory)
        try:
            yield
        finally:
            await self.stop(name)

    async def _guard(self, name: str, factory: LoopFactory) -> None:
        status = self.loops[name]
        while True:
            began = self._clock()
            try:
                await factory()
                return  # a loop that ends by itself is done
            except Exception as exc:  # everything but a cancel: log, back off, start again
                self._crashed(status, exc, self._clock() - began)
            await asyncio.sleep(BACKOFF_SECONDS[min(status.failing, len(BACKOFF_SECONDS)) - 1])

    @staticmethod
    def _crashed(status: LoopStatus, exc: Exception, ran_for: float) -> None:
        if ran_for >= HEALED_AFTER_SECONDS:
            status.failing = 0
        status.failing += 1
        status.restarts += 1
        status.last_error = f"{exc.__class__.__name__}: {exc}"
        log.error("background loop %s crashed (%d in a row); starting it again",
                  status.name, status.failing, exc_info=exc)


def stop_if_cancelled() -> None:
    """Re-raise a cancellation that a library turned into its own error.

    redis-py may answer a cancel that lands mid-command with a ConnectionError; a loop
    that retries on Redis errors would then never stop. Call this in such handlers.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
