"""The forwarder's HTTP client: keep-alive connections to each plain-HTTP backend, and
aiohttp's client for HTTPS (the cloud APIs).

Local backends (Ollama, vLLM, llama.cpp, LM Studio) are spoken to over plain HTTP on
a private network, where aiohttp's general-purpose client (cookies, tracing, timers,
redirects) costs more CPU per request than all of the routing. This client writes a
request in one piece and parses the answer with llhttp: `benchmarks/gateway_bench.py`
and docs/benchmarks.md show what that buys. It offers the part of aiohttp's response
the forwarder uses (status, headers, content_type, read(), content.iter_any()), so
both clients are handled alike.

A connection that was idle in the pool may have been closed by the backend just as
a request went out on it (servers close idle keep-alive connections after a few
seconds); such a request is sent again once, on a new connection.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any
from urllib.parse import unquote, urlsplit

import aiohttp

from nexus.client.connection import BackendConnection, BackendResponse
from nexus.client.errors import ConnectFailed

IDLE_SECONDS = 15.0  # a pooled connection unused for longer is closed, not reused
MAX_IDLE_PER_HOST = 512
USER_AGENT = "nexus-gateway"


class Target:
    """A URL taken apart once: where to connect, and the head's fixed part."""

    __slots__ = ("basic", "head", "host", "port")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.hostname is None:
            raise ValueError(f"no host in {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.basic = b""  # credentials in the URL, as aiohttp sends them: Basic auth
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.basic = b"Authorization: Basic " + base64.b64encode(pair.encode()) + b"\r\n"
        self.head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc.rpartition('@')[2]}\r\n"
                     f"User-Agent: {USER_AGENT}\r\nAccept: */*\r\n").encode("latin-1")


class BackendClient:
    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session  # for HTTPS
        self._idle: dict[tuple[str, int], list[BackendConnection]] = {}
        self._targets: dict[str, Target] = {}
        self._open: set[BackendConnection] = set()

    def post(self, url: str, data: bytes, headers: Mapping[str, str],
             timeout: aiohttp.ClientTimeout) -> Any:
        """`async with client.post(...) as response`: aiohttp's for https://."""
        if url.startswith("https:"):
            return self.session.post(url, data=data, headers=headers, timeout=timeout)
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 4096:  # URLs come from the config: a bound, not a cache
                self._targets.clear()
            target = self._targets[url] = Target(url)
        return ClientExchange(self, target, _request_bytes(target, data, headers),
                        timeout.sock_connect)

    async def close(self) -> None:
        for connection in list(self._open):
            connection.close()
        self._open.clear()
        self._idle.clear()

    # -- connections -----------------------------------------------------------------------
    def take(self, target: Target) -> BackendConnection | None:
        idle = self._idle.get((target.host, target.port))
        now = time.monotonic()
        while idle:
            connection = idle.pop()
            if not connection.closed and now - connection.idle_since < IDLE_SECONDS:
                return connection
            self.discard(connection)
        return None

    async def connect(self, target: Target, within: float | None) -> BackendConnection:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(within):
                transport, connection = await loop.create_connection(
                    BackendConnection, target.host, target.port)
        except TimeoutError as exc:
            raise ConnectFailed(target.host, target.port, TimeoutError(
                f"no connection within {within:g}s")) from exc
        except OSError as exc:
            raise ConnectFailed(target.host, target.port, exc) from exc
        connection.transport = transport  # uvloop calls connection_made after this returns
        self._open.add(connection)
        return connection

    def give_back(self, target: Target, connection: BackendConnection) -> None:
        idle = self._idle.setdefault((target.host, target.port), [])
        if connection.done() and len(idle) < MAX_IDLE_PER_HOST:
            connection.idle_since = time.monotonic()
            idle.append(connection)
        else:
            self.discard(connection)

    def discard(self, connection: BackendConnection) -> None:
        connection.close()
        self._open.discard(connection)


class ClientExchange:
    """One request and its response, as `async with`: the connection goes back to the
    pool when the response was read whole, and is closed otherwise."""

    __slots__ = ("_client", "_connection", "_data", "_target", "_timeout")

    def __init__(self, client: BackendClient, target: Target, data: bytes,
                 timeout: float | None) -> None:
        self._client = client
        self._target = target
        self._data = data
        self._timeout = timeout
        self._connection: BackendConnection | None = None

    async def __aenter__(self) -> BackendResponse:
        client, target = self._client, self._target
        connection = client.take(target)
        if connection is not None:
            try:
                return await self._send(connection)
            except aiohttp.ServerDisconnectedError:
                if connection.answered:  # it began to answer: not the idle-close race
                    raise
        return await self._send(await client.connect(target, self._timeout))

    async def _send(self, connection: BackendConnection) -> BackendResponse:
        self._connection = connection
        try:
            return await connection.send(self._data)
        except BaseException:
            self._client.discard(connection)
            raise

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        connection = self._connection
        if connection is None:
            return
        if kind is None:
            self._client.give_back(self._target, connection)
        else:
            self._client.discard(connection)


def _request_bytes(target: Target, body: bytes, headers: Mapping[str, str]) -> bytes:
    lines = [target.head]
    if target.basic and not any(name.lower() == "authorization" for name in headers):
        lines.append(target.basic)
    for name, value in headers.items():
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
            raise ValueError(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    lines.append(b"Content-Length: %d\r\n\r\n" % len(body))
    lines.append(body)
    return b"".join(lines)

