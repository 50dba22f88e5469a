"""One keep-alive HTTP/1.1 connection to a backend, parsed by llhttp (httptools).

A request is written in one piece (`send`); the response's status and headers
resolve the future `send` returns, and its body goes to a BodyStream as it arrives.
The connection may serve again only when the whole response was read and both sides
said keep-alive.
"""

from __future__ import annotations

import asyncio
from typing import cast

import httptools
from multidict import CIMultiDict, CIMultiDictProxy

from nexus.client.body import BodyStream
from nexus.client.errors import BrokenResponse, cut_short, disconnected


class BackendResponse:
    __slots__ = ("_headers", "_raw_headers", "content", "status")

    def __init__(self, status: int, raw_headers: list[tuple[bytes, bytes]],
                 content: BodyStream) -> None:
        self.status = status
        self._raw_headers = raw_headers
        self._headers: CIMultiDictProxy[str] | None = None
        self.content = content

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        if self._headers is None:  # made only when asked (errors, Retry-After)
            self._headers = CIMultiDictProxy(CIMultiDict(
                (name.decode("latin-1"), value.decode("latin-1"))
                for name, value in self._raw_headers))
        return self._headers

    @property
    def content_type(self) -> str:
        """The media type, lower case, without parameters (as aiohttp gives it)."""
        for name, value in self._raw_headers:
            if len(name) == 12 and name.lower() == b"content-type":
                return value.split(b";", 1)[0].strip().lower().decode("latin-1")
        return "application/octet-stream"

    async def read(self) -> bytes:
        return await self.content.read()


class BackendConnection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._headers: list[tuple[bytes, bytes]] = []
        self._framed = False  # the response says its length (Content-Length or chunked)
        self._ready: asyncio.Future[BackendResponse] | None = None
        self._body: BodyStream | None = None
        self.closed = False
        self.reusable = False  # the last response was read whole, and keep-alive
        self.answered = False  # a byte of the current response arrived
        self.idle_since = 0.0

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(BrokenResponse(f"not an HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        body = self._body
        if body is not None and not body.ended:
            if self._framed:
                body.set_exception(cut_short())
            else:  # the body runs to the connection's end (HTTP/1.0 style)
                body.end()
        self._fail(disconnected())

    # -- the parser's callbacks ------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))
        lowered = name.lower()
        if lowered == b"content-length" or (lowered == b"transfer-encoding"
                                            and b"chunked" in value.lower()):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._body = BodyStream(self)
        response = BackendResponse(self._parser.get_status_code(), self._headers, self._body)
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.feed(body)

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        if self._body is not None:
            self._body.end()

    # -- the pool's side -------------------------------------------------------------------
    def send(self, data: bytes) -> asyncio.Future[BackendResponse]:
        """Write a whole request; the future resolves with the response's head."""
        assert self.transport is not None
        self._headers = []
        self._framed = False
        self._body = None
        self.reusable = False
        self.answered = False
        ready = self._ready = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return ready

    def done(self) -> bool:
        """The response was read whole and the connection may carry another."""
        body = self._body
        return (self.reusable and not self.closed and body is not None and body.ended
                and not body.failed)

    def pause_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.closed = True
        self.reusable = False

    def _fail(self, error: Exception) -> None:
        ready, self._ready = self._ready, None
        if ready is not None and not ready.done():
            ready.set_exception(error)
        if self._body is not None:
            self._body.set_exception(error)
