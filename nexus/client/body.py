"""A response body as it arrives: read whole, or chunk by chunk as the backend sends it.

The connection feeds it; when more than HIGH_WATER bytes wait unread (a slow client
behind a fast backend), the connection stops reading from the socket until they are
taken, so a stream never piles up in memory.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

HIGH_WATER = 256 * 1024


class Reading(Protocol):
    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


class BodyStream:
    __slots__ = ("_chunks", "_error", "_paused", "_reading", "_size", "_waiter", "ended")

    def __init__(self, reading: Reading) -> None:
        self._reading = reading
        self._chunks: deque[bytes] = deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._paused = False
        self.ended = False  # the backend sent the whole body

    # -- the connection's side -------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        if self._size > HIGH_WATER and not self._paused:
            self._paused = True
            self._reading.pause_reading()
        self._wake()

    def end(self) -> None:
        self.ended = True
        self._wake()

    def set_exception(self, error: BaseException) -> None:
        """The body will not come (the backend broke it, or the stall watch gave up)."""
        if self._error is None and not self.ended:
            self._error = error
            self._wake()

    @property
    def failed(self) -> bool:
        return self._error is not None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # -- the reader's side -----------------------------------------------------------------
    async def next_chunk(self) -> bytes:
        """What has arrived since the last call, joined; b"" once the body is over."""
        while not self._chunks:
            if self._error is not None:
                raise self._error
            if self.ended:
                return b""
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        if self._paused:
            self._paused = False
            self._reading.resume_reading()
        return data

    async def read(self) -> bytes:
        parts = []
        while chunk := await self.next_chunk():
            parts.append(chunk)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def iter_any(self) -> Chunks:
        return Chunks(self)


class Chunks:
    """`async for chunk in body.iter_any()`, resumable after a break (as aiohttp's is)."""

    __slots__ = ("_body",)

    def __init__(self, body: BodyStream) -> None:
        self._body = body

    def __aiter__(self) -> Chunks:
        return self

    async def __anext__(self) -> bytes:
        chunk = await self._body.next_chunk()
        if not chunk:
            raise StopAsyncIteration
        return chunk
