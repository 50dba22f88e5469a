"""The client connections of one replica: how many may be open, how long a client may
take to send its headers, and what the log says when a client misbehaves.

aiohttp's own handler reads each connection; a thin protocol in front of it adds what
a gateway in front of many tenants needs, without touching aiohttp's internals:

- beyond `server.max_connections` open connections, a new one is answered 503 at
  once and closed, so a flood of idle sockets never starves /health;
- a connection whose request headers have not arrived `header_timeout_seconds` after
  it opened is answered 408 and closed (slow-header clients hold no socket for long);
- what a client causes (malformed requests, disconnects mid-body) is counted and
  logged as one line at most, rate-limited, never as an ERROR with a traceback. Real
  bugs keep their traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any, cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from nexus.config.schema import ServerConfig

log = logging.getLogger("nexus.http")
QUIET_LOG_SECONDS = 10.0  # one line per kind of client error in this many seconds
END_OF_HEADERS = b"\r\n\r\n"
FILES_KEPT_FREE = 256  # open files a replica needs besides client connections


def _answer(status: str, code: str, message: str, retry_after: int | None = None) -> bytes:
    body = (f'{{"error":{{"message":"{message}","type":"server_error","code":"{code}",'
            '"param":null}}').encode()
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
    if retry_after is not None:
        head += f"Retry-After: {retry_after}\r\n"
    return (head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


FULL = _answer("503 Service Unavailable", "too_many_connections",
               "This replica has as many client connections open as it takes "
               "(server.max_connections); retry shortly", retry_after=1)
HEADERS_LATE = _answer("408 Request Timeout", "request_timeout",
                       "The request headers did not arrive in time "
                       "(server.header_timeout_seconds)")


class Edge:
    """The limits and counts of this replica's client connections."""

    def __init__(self, server: ServerConfig) -> None:
        self.max_connections = server.max_connections
        self.header_timeout = server.header_timeout_seconds
        self.open = 0
        self.client_errors: Counter[str] = Counter()  # by kind, for /metrics
        self._last_logged: dict[str, float] = {}

    def fit(self, open_files: int) -> None:
        """Keep the cap within the process's open-file limit, leaving room for backends,
        Redis and the files a replica opens itself (FILES_KEPT_FREE)."""
        room = max(1, open_files - FILES_KEPT_FREE)
        if room < self.max_connections:
            log.warning("server.max_connections is %d, but the open-file limit (%d) leaves "
                        "room for %d client connections: capping there", self.max_connections,
                        open_files, room)
            self.max_connections = room

    def client_error(self, kind: str, detail: str) -> None:
        """A client misbehaved: counted, and logged once per kind per QUIET_LOG_SECONDS."""
        self.client_errors[kind] += 1
        now = time.monotonic()
        if now - self._last_logged.get(kind, -QUIET_LOG_SECONDS) >= QUIET_LOG_SECONDS:
            self._last_logged[kind] = now
            log.info("client error (%s): %s; %d so far", kind, detail,
                     self.client_errors[kind])


class QuietLogger(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, for the errors it logs itself: a malformed request or a
    client gone mid-request is the client's doing, counted and logged quietly."""

    def __init__(self, edge: Edge) -> None:
        super().__init__(logging.getLogger("aiohttp.server"), {})
        self.edge = edge

    def exception(self, msg: object, *args: Any, exc_info: Any = True,
                  **kwargs: Any) -> None:
        kind = client_fault(exc_info)
        if kind is None:
            super().exception(msg, *args, exc_info=exc_info, **kwargs)
        else:
            self.edge.client_error(kind, f"{exc_info.__class__.__name__}: {exc_info}")


def client_fault(exc: object) -> str | None:
    """The kind of client error `exc` is, or None when it is not the client's doing."""
    if isinstance(exc, HttpProcessingError):
        return "malformed_request"
    if isinstance(exc, ConnectionError | asyncio.IncompleteReadError):
        return "disconnected"
    return None


class GuardedConnection(asyncio.Protocol):
    """One client connection: aiohttp's handler behind the edge's limits."""

    __slots__ = ("admitted", "edge", "handler", "tail", "timer", "transport")

    def __init__(self, handler: asyncio.Protocol, edge: Edge) -> None:
        self.handler = handler
        self.edge = edge
        self.admitted = False  # counted in edge.open, and handed to aiohttp's handler
        self.transport: asyncio.Transport | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.tail = b""  # the last bytes seen, to find the end of headers split over reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not its subclasses
        self.transport = transport
        if self.edge.open >= self.edge.max_connections:
            self.edge.client_errors["refused_connection"] += 1
            transport.write(FULL)
            transport.close()
            return
        self.admitted = True
        self.edge.open += 1
        self.handler.connection_made(transport)
        self.timer = asyncio.get_running_loop().call_later(self.edge.header_timeout,
                                                           self._headers_late)

    def _headers_late(self) -> None:
        self.timer = None
        self.edge.client_error("header_timeout", "request headers not sent in time")
        if self.transport is not None:
            self.transport.write(HEADERS_LATE)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self.admitted:
            return
        if self.timer is not None:
            seen = self.tail + data
            if END_OF_HEADERS in seen:
                self.timer.cancel()
                self.timer = None
            else:
                self.tail = seen[-3:]
        self.handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self.handler.eof_received() if self.admitted else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.admitted:
            self.admitted = False
            self.edge.open -= 1
            self.handler.connection_lost(exc)

    def pause_writing(self) -> None:
        if self.admitted:
            self.handler.pause_writing()

    def resume_writing(self) -> None:
        if self.admitted:
            self.handler.resume_writing()


class GuardedServer:
    """aiohttp's protocol factory, each connection it makes behind the edge."""

    def __init__(self, inner: web.Server, edge: Edge) -> None:
        self.inner = inner
        self.edge = edge

    def __call__(self) -> GuardedConnection:
        return GuardedConnection(self.inner(), self.edge)

    def __getattr__(self, name: str) -> Any:  # shutdown, connections, ...: aiohttp's own
        return getattr(self.inner, name)


class GatewayRunner(web.AppRunner):
    """aiohttp's runner for the app, its connections guarded by `edge`."""

    def __init__(self, app: web.Application, edge: Edge, **kwargs: Any) -> None:
        super().__init__(app, logger=QuietLogger(edge), **kwargs)
        self.edge = edge

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        # The sites only call the factory, and the runner only the server's own methods,
        # which the wrapper hands on: it stands in for the server it wraps.
        return cast(web.Server, GuardedServer(server, self.edge))
