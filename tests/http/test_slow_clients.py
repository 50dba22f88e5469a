"""Slow, idle and hostile clients: they hold no socket for long, cannot starve /health,
are never counted against a backend, and do not flood the log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from typing import Any

import aiohttp
import pytest

from nexus.cli.serve import raise_open_file_limit
from nexus.http.context import EDGE
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
    until,
)


async def start(mock_backend: MockFactory, gateway: GatewayFactory,
                **server: Any) -> tuple[RunningGateway, Any]:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)], server=server))
    return gw, mock


async def connect(gw: RunningGateway) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = gw.url.removeprefix("http://").split(":")
    return await asyncio.open_connection(host, int(port))


async def close_all(writers: list[asyncio.StreamWriter]) -> None:
    for writer in writers:
        writer.close()
    for writer in writers:
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_health_answers_while_a_thousand_idle_connections_are_open(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    if raise_open_file_limit() < 2_600:  # each idle socket is two files in this process
        pytest.skip("the open-file limit is below what 1,000 loopback connections need")
    gw, _ = await start(mock_backend, gateway, header_timeout_seconds=600)
    writers = [(await connect(gw))[1] for _ in range(1_000)]
    try:
        await until(lambda: gw.app[EDGE].open >= 1_000, within=30)
        async with http.get(gw.url + "/health") as r:
            assert r.status == 200
        async with http.get(gw.url + "/metrics") as r:
            assert "nexus_client_connections 100" in await r.text()  # 1000 or 1001
    finally:
        await close_all(writers)
    await until(lambda: gw.app[EDGE].open <= 1, within=30)


async def test_a_client_slow_to_send_its_headers_gets_408_and_is_closed(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    gw, _ = await start(mock_backend, gateway, header_timeout_seconds=0.2)
    reader, writer = await connect(gw)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # and no more
    answer = await asyncio.wait_for(reader.read(), 30)  # read to the server's close
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"server.header_timeout_seconds" in answer
    assert gw.app[EDGE].client_errors["header_timeout"] == 1


async def test_a_client_that_sent_its_headers_is_not_cut_by_the_header_timeout(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    gw, mock = await start(mock_backend, gateway, header_timeout_seconds=0.2)
    mock.set(delay=1.0)  # the answer takes longer than the header timeout
    reader, writer = await connect(gw)
    body = json.dumps(chat()).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nConnection: close\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)
    answer = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 200")


async def test_beyond_max_connections_a_new_connection_gets_503_at_once(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    gw, _ = await start(mock_backend, gateway, max_connections=5,
                        header_timeout_seconds=600)
    writers = [(await connect(gw))[1] for _ in range(5)]
    try:
        await until(lambda: gw.app[EDGE].open == 5)
        reader, writer = await connect(gw)
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 30)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503")
        assert b"Retry-After: 1" in answer
        assert b"too_many_connections" in answer
    finally:
        await close_all(writers)
    await until(lambda: gw.app[EDGE].open == 0)
    async with http.get(gw.url + "/health") as r:
        assert r.status == 200


async def test_a_body_that_does_not_arrive_in_time_gets_408(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    gw, mock = await start(mock_backend, gateway, body_timeout_seconds=0.2)
    reader, writer = await connect(gw)
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nContent-Length: 100\r\n\r\n{\"model\"")
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    writer.close()
    assert head.startswith(b"HTTP/1.1 408")
    assert mock.chat_requests() == []


async def test_a_client_that_stops_reading_is_cut_and_never_held_against_the_backend(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    words = 60_000  # megabytes of events: more than the sockets' buffers hold
    mock = await mock_backend("gpu", reply=" ".join(["w"] * words), chunks=words)
    gw = await gateway(make_config([backend(mock)], server={
        "write_timeout_seconds": 0.3, "request_timeout_seconds": 0.5}))
    host, port = gw.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # takes little, then nothing
    sock.connect((host, int(port)))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    body = json.dumps(chat(stream=True)).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                 b"application/json\r\nContent-Length: " + str(len(body)).encode()
                 + b"\r\n\r\n" + body)
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)  # then it reads no more
    watch = gw.gateway.forwarder.watch
    await until(lambda: len(watch) == 1, within=30)
    await until(lambda: len(watch) == 0, within=60)  # the relay gave up on the client
    writer.close()
    gpu = gw.gateway.registry.get("gpu")
    assert gpu is not None
    assert gpu.health.state.value == "healthy"
    assert dict(gw.gateway.stats.failures) == {}


async def test_malformed_requests_and_disconnects_are_counted_not_logged_as_errors(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        caplog: pytest.LogCaptureFixture) -> None:
    gw, _ = await start(mock_backend, gateway)
    garbage = [b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
               b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
               b"\r\n\r\nzz\r\n",
               b"GET /\x00 HTTP/1.1\r\n\r\n",
               b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n"]
    with caplog.at_level(logging.INFO):
        for _ in range(10):
            for raw in garbage:
                reader, writer = await connect(gw)
                writer.write(raw)
                with contextlib.suppress(ConnectionError):
                    await asyncio.wait_for(reader.read(), 30)
                writer.close()
            reader, writer = await connect(gw)  # leaves half-way through its body
            writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":")
            await writer.drain()
            writer.close()
        await until(lambda: gw.app[EDGE].client_errors["disconnected"] >= 10, within=30)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert errors == []
    quiet = [r for r in caplog.records if r.getMessage().startswith("client error")]
    assert len(quiet) <= 2  # one line per kind in the quiet period
    assert gw.app[EDGE].client_errors["malformed_request"] >= 30
    async with http.get(gw.url + "/metrics") as r:
        text = await r.text()
    assert 'nexus_client_errors_total{kind="malformed_request"}' in text
