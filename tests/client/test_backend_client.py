"""The lean backend client against raw loopback servers that answer in the ways real
servers do: keep-alive, close after the answer, close idle connections, chunked and
unframed bodies, bodies cut short, bytes that are not HTTP, slow readers."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest

from nexus.backends.causes import connection_failure
from nexus.client import BackendClient
from nexus.client.body import HIGH_WATER
from nexus.client.errors import BrokenResponse, ConnectFailed
from tests.support.helpers import until

TIMEOUT = aiohttp.ClientTimeout(sock_connect=5)
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """A TCP server whose handler writes whatever bytes a test wants."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length"))
        request = head + await reader.readexactly(length)
        self.requests.append(request)
        return request


@pytest.fixture
async def client() -> AsyncIterator[BackendClient]:
    async with aiohttp.ClientSession() as session:
        backend_client = BackendClient(session)
        yield backend_client
        await backend_client.close()


def answer(body: bytes, *headers: bytes) -> bytes:
    extra = b"".join(h + b"\r\n" for h in headers)
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n" + extra
            + b"Content-Length: %d\r\n\r\n" % len(body) + body)


async def keep_alive(server: RawServer, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
    while True:
        await server.read_request(reader)
        writer.write(answer(b'{"ok":true}'))
        await writer.drain()


ServerHandler = Callable[[RawServer, asyncio.StreamReader, asyncio.StreamWriter],
                         Awaitable[None]]
Serve = Callable[[ServerHandler], Awaitable[tuple[RawServer, str]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[RawServer] = []

    async def start(handler: ServerHandler) -> tuple[RawServer, str]:
        server = RawServer(lambda r, w: handler(server, r, w))
        servers.append(server)
        return server, await server.start()

    yield start
    for server in servers:
        if server.server is not None:
            server.server.close()
            await server.server.wait_closed()


async def fetch(client: BackendClient, url: str, body: bytes = b"{}",
                headers: dict[str, str] | None = None) -> tuple[int, str, bytes]:
    async with client.post(url + "/v1/chat/completions", body,
                           headers or {"Content-Type": "application/json"}, TIMEOUT) as response:
        return response.status, response.content_type, await response.read()


async def test_a_keep_alive_connection_carries_request_after_request(
        client: BackendClient, serve: Serve) -> None:
    server, url = await serve(keep_alive)
    for _ in range(5):
        assert await fetch(client, url) == (200, "application/json", b'{"ok":true}')
    assert server.connections == 1
    request = server.requests[0]
    assert request.startswith(b"POST /v1/chat/completions HTTP/1.1\r\n")
    assert b"Host: 127.0.0.1:" in request
    assert request.endswith(b"\r\n\r\n{}")


async def test_a_connection_the_backend_closes_after_answering_is_not_reused(
        client: BackendClient, serve: Serve) -> None:
    async def once(server: RawServer, reader: asyncio.StreamReader,
                   writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer(b"{}", b"Connection: close"))
        await writer.drain()

    server, url = await serve(once)
    for _ in range(3):
        assert (await fetch(client, url))[0] == 200
    assert server.connections == 3


async def test_an_idle_connection_closed_by_the_backend_is_replaced_without_an_error(
        client: BackendClient, serve: Serve) -> None:
    """Servers close idle keep-alive connections (uvicorn after 5 s): the request that
    finds its pooled connection closed goes out again on a new one."""
    async def then_hang_up(server: RawServer, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer(b"{}"))  # says keep-alive...
        await writer.drain()
        if server.connections == 1:
            await reader.read(1)  # ...then closes as the next request arrives, unread

    server, url = await serve(then_hang_up)
    assert (await fetch(client, url))[0] == 200
    assert (await fetch(client, url))[0] == 200
    assert server.connections == 2


async def test_chunked_and_unframed_bodies_are_read_whole(client: BackendClient,
                                                        serve: Serve) -> None:
    async def chunked(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n"
                     b"5\r\ndata:\r\n3\r\n {}\r\n0\r\n\r\n")
        await writer.drain()

    async def unframed(server: RawServer, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{\"a\":")
        await writer.drain()
        writer.write(b"1}")  # the body ends where the connection does

    _, chunked_url = await serve(chunked)
    assert await fetch(client, chunked_url) == (200, "text/event-stream", b"data: {}")
    _, unframed_url = await serve(unframed)
    assert await fetch(client, unframed_url) == (200, "application/json", b'{"a":1}')


async def test_a_body_cut_short_fails_the_read_and_the_connection_is_dropped(
        client: BackendClient, serve: Serve) -> None:
    async def cut(server: RawServer, reader: asyncio.StreamReader,
                  writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"partial\"")
        await writer.drain()

    _, url = await serve(cut)
    with pytest.raises(aiohttp.ClientPayloadError) as raised:
        await fetch(client, url)
    assert connection_failure(raised.value) == "the response was cut short"
    assert not client._open


async def test_bytes_that_are_not_http_are_a_broken_response(client: BackendClient,
                                                            serve: Serve) -> None:
    async def garbage(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        await reader.read(1)

    _, url = await serve(garbage)
    with pytest.raises(BrokenResponse) as raised:
        await fetch(client, url)
    assert "not an HTTP response" in connection_failure(raised.value)


async def test_a_backend_that_hangs_up_without_answering_is_disconnected(
        client: BackendClient, serve: Serve) -> None:
    async def hang_up(server: RawServer, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)

    _, url = await serve(hang_up)
    with pytest.raises(aiohttp.ServerDisconnectedError) as raised:
        await fetch(client, url)
    assert connection_failure(raised.value) == \
        "the backend closed the connection without answering"


async def test_a_refused_connection_says_so(client: BackendClient, serve: Serve) -> None:
    server, url = await serve(keep_alive)
    assert server.server is not None
    server.server.close()
    await server.server.wait_closed()
    with pytest.raises(ConnectFailed) as raised:
        await fetch(client, url)
    assert connection_failure(raised.value) == "connection refused"


async def test_a_slow_reader_stops_the_socket_instead_of_buffering_the_stream(
        client: BackendClient, serve: Serve) -> None:
    sent = asyncio.Event()

    async def flood(server: RawServer, reader: asyncio.StreamReader,
                    writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        for _ in range(64):  # 4 MiB, far past what the client may hold unread
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        sent.set()

    _, url = await serve(flood)
    async with client.post(url + "/", b"{}", {}, TIMEOUT) as response:
        body = response.content
        await until(lambda: body._paused)  # the client stopped reading the socket
        assert body._size <= HIGH_WATER + 65536 * 2
        assert not sent.is_set()
        total = 0
        async for chunk in body.iter_any():
            total += len(chunk)
    assert total == 64 * 65536



async def test_credentials_in_the_url_become_basic_auth_and_line_breaks_are_refused(
        client: BackendClient, serve: Serve) -> None:
    server, url = await serve(keep_alive)
    assert (await fetch(client, url.replace("http://", "http://user:p%40ss@")))[0] == 200
    expected = base64.b64encode(b"user:p@ss").decode()
    assert f"Authorization: Basic {expected}\r\n".encode() in server.requests[0]
    with pytest.raises(ValueError, match="line break"):
        await fetch(client, url, headers={"X-Note": "a\r\nInjected: yes"})


async def test_https_goes_through_aiohttp(client: BackendClient) -> None:
    request = client.post("https://127.0.0.1:1/v1/x", b"{}", {}, TIMEOUT)
    with pytest.raises(aiohttp.ClientConnectorError):
        async with request:
            pass
