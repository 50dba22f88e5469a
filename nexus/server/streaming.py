"""Relay a backend's SSE stream as it arrives; the first bytes decide retry or commit.

Before the first byte reaches the client, a failure is the backend's and the next
candidate may try. After it, nothing is retried: an upstream failure ends the stream
with an SSE error event, and a client that leaves is never held against the backend.

Every write is a packet to the client: the response's headers leave with the first
event, and the write that carries `[DONE]` also ends the response, so a short answer
that arrives at once goes out in one packet.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from nexus.adapters.base import StreamTranslator
from nexus.adapters.sse import error_event
from nexus.backends.backend import Backend
from nexus.errors import BackendError
from nexus.server.stall import Exchange
from nexus.server.stats import Stats
from nexus.server.upstream import UpstreamFailure

log = logging.getLogger(__name__)
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)
_END = b"[DONE]\n\n"  # the last event of an OpenAI stream, as both translators send it


class ClientGone(Exception):
    """The client closed its connection while we were writing to it."""


class EventStreamResponse(web.StreamResponse):
    """A streamed response whose headers wait for the first event, to share its packet.
    The relay writes as soon as it prepares, so the client waits for nothing. (aiohttp
    older than 3.12 lacks the switch and sends the headers at once, as it always did.)"""

    _send_headers_immediately = False


async def relay_stream(response: aiohttp.ClientResponse, request: web.Request,
                       headers: dict[str, str], translator: StreamTranslator,
                       backend: Backend, stats: Stats, started: float,
                       exchange: Exchange) -> web.StreamResponse:
    chunks = response.content.iter_any()
    first = await _first_bytes(chunks, translator, backend, exchange)
    millis = (time.monotonic() - started) * 1000
    backend.observe_latency(millis)
    backend.metrics.first_token(millis)
    headers["Content-Type"] = "text/event-stream"
    headers["Cache-Control"] = "no-cache"
    out = EventStreamResponse(headers=headers)
    try:
        ended = await _send(out, first, request)
        if await _relay_rest(chunks, out, translator, backend, exchange, ended):
            backend.health.success()
            backend.metrics.success()
        else:
            backend.metrics.error()
    except ClientGone:
        log.info("client left mid-stream from %s", backend.name)
    stats.response(backend.name, 200, translator.usage)
    with contextlib.suppress(ConnectionResetError):
        await out.write_eof()  # a no-op when [DONE] ended the response already
    return out


async def _first_bytes(chunks: AsyncIterator[bytes], translator: StreamTranslator,
                       backend: Backend, exchange: Exchange) -> bytes:
    """Read until there is something to send; a failure here is still retryable."""
    try:
        async for chunk in chunks:
            exchange.reads += 1
            out = translator.feed(chunk)
            if out:
                return out
    except UPSTREAM_ERRORS as exc:
        backend.health.failure(f"stream broke before the first byte: {exc.__class__.__name__}")
        raise UpstreamFailure(BackendError(f"{backend.name} dropped the stream")) from None
    backend.health.failure("empty stream")
    raise UpstreamFailure(BackendError(f"{backend.name} closed the stream without data"))


async def _relay_rest(chunks: AsyncIterator[bytes], out: web.StreamResponse,
                      translator: StreamTranslator, backend: Backend, exchange: Exchange,
                      ended: bool) -> bool:
    """Relay to `[DONE]` or the end; False when the backend broke the stream first (the
    client is told). After `[DONE]` the rest is read but not sent: the client has its
    answer, and reading to the end lets the backend's connection serve again.

    A failed write leaves as ClientGone, never as one of UPSTREAM_ERRORS (aiohttp's
    reset error is both a ClientError and a ConnectionResetError), so only a failed
    read is the backend's fault."""
    try:
        async for chunk in chunks:
            exchange.reads += 1
            if ended:
                continue
            data = translator.feed(chunk)
            if data:
                ended = await _send(out, data)
    except UPSTREAM_ERRORS as exc:
        if ended:
            log.info("%s broke its stream after [DONE]: %s", backend.name,
                     exc.__class__.__name__)
            return True
        backend.health.failure(f"stream broke: {exc.__class__.__name__}")
        what = f"went silent ({exc})" if isinstance(exc, TimeoutError) \
            else "dropped the stream"
        await _send(out, error_event(f"{backend.name} {what} mid-response",
                                     code="backend_stream_interrupted"))
        return False
    return True


async def _send(out: web.StreamResponse, data: bytes, request: web.Request | None = None) -> bool:
    """Write data (preparing the response first when given the request); True when the
    data held `[DONE]` and so also ended the response."""
    try:
        if request is not None:
            await out.prepare(request)
        if data.endswith(_END):
            await out.write_eof(data)
            return True
        await out.write(data)
    except ConnectionResetError:  # aiohttp's ClientConnectionResetError included
        raise ClientGone from None
    return False
