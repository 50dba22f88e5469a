"""The bounded priority queue where requests wait for capacity or a loading model.

Nobody polls: a waiter sleeps until capacity frees (`wake_one`, when a request to
a backend finishes) or the fleet changes (`wake_all`, after health checks), then
asks the router again. Higher `X-Nexus-Priority` wakes first; ties keep arrival order.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools

from nexus.config.schema import QueueConfig


class QueueFull(Exception):
    pass


class Ticket:
    """One request's place in the queue, kept across its wake-ups."""

    __slots__ = ("deadline", "order", "priority")

    def __init__(self, priority: int, order: int, deadline: float) -> None:
        self.priority = priority
        self.order = order
        self.deadline = deadline


class WaitQueue:
    def __init__(self, config: QueueConfig) -> None:
        self.config = config
        self._heap: list[tuple[int, int, asyncio.Future[None]]] = []
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._heap)

    @property
    def enabled(self) -> bool:
        return self.config.enabled and self.config.max_size > 0

    def ticket(self, priority: int) -> Ticket:
        if len(self._heap) >= self.config.max_size:
            raise QueueFull(f"the wait queue is full ({self.config.max_size} requests)")
        loop = asyncio.get_running_loop()
        return Ticket(priority, next(self._order), loop.time() + self.config.max_wait_seconds)

    async def wait(self, ticket: Ticket) -> bool:
        """Sleep until woken (True) or until the ticket's deadline passes (False)."""
        loop = asyncio.get_running_loop()
        remaining = ticket.deadline - loop.time()
        if remaining <= 0:
            return False
        future: asyncio.Future[None] = loop.create_future()
        entry = (-ticket.priority, ticket.order, future)
        heapq.heappush(self._heap, entry)
        try:
            await asyncio.wait_for(future, remaining)
            return True
        except TimeoutError:
            return False
        finally:
            if not future.done():
                future.cancel()
            self._discard(entry)

    def wake_one(self) -> None:
        while self._heap:
            _, _, future = heapq.heappop(self._heap)
            if not future.done():
                future.set_result(None)
                return

    def wake_all(self) -> None:
        heap, self._heap = self._heap, []
        for _, _, future in heap:
            if not future.done():
                future.set_result(None)

    def _discard(self, entry: tuple[int, int, asyncio.Future[None]]) -> None:
        try:
            self._heap.remove(entry)
        except ValueError:
            return
        heapq.heapify(self._heap)
