"""Relay a backend's SSE stream as it arrives; the first bytes decide retry or commit.

Before the first byte reaches the client, a failure is the backend's and the next
candidate may try. After it, nothing is retried: an upstream failure ends the stream
with an SSE error event, and a client that leaves is never held against the backend.

Every write is a packet to the client: the response's headers leave with the first
event, and the write that carries `[DONE]` also ends the response, so a short answer
that arrives at once goes out in one packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp
import msgspec
from aiohttp import web

from nexus.adapters.base import StreamTranslator
from nexus.backends.backend import Backend
from nexus.backends.causes import connection_failure
from nexus.backends.recorder import Outcome, OutcomeRecorder
from nexus.client import UpstreamResponse
from nexus.core.errors import BackendError
from nexus.core.types import Usage
from nexus.proxy.call import OPENAI_STREAM, StreamShape
from nexus.proxy.stall import Exchange
from nexus.proxy.upstream import UpstreamFailure

log = logging.getLogger(__name__)
UPSTREAM_ERRORS = (aiohttp.ClientError, TimeoutError)


class ClientGone(Exception):
    """The client closed its connection while we were writing to it."""


class EventStreamResponse(web.StreamResponse):
    """A streamed response whose headers wait for the first event, to share its packet.
    The relay writes as soon as it prepares, so the client waits for nothing. (aiohttp
    older than 3.12 lacks the switch and sends the headers at once, as it always did.)"""

    _send_headers_immediately = False


class Relay:
    """One backend stream relayed to one client. `bill` runs before the write that ends
    the response, so a paid answer's cost is in the store before its last byte leaves."""

    def __init__(self, response: UpstreamResponse, request: web.Request,
                 headers: dict[str, str], translator: StreamTranslator, backend: Backend,
                 recorder: OutcomeRecorder, exchange: Exchange, input_estimate: int,
                 bill: Callable[[Usage, bool], Awaitable[None]],
                 shape: StreamShape = OPENAI_STREAM) -> None:
        self.chunks = response.content.iter_any()
        self.request = request
        self.headers = headers
        self.translator = translator
        self.backend = backend
        self.recorder = recorder
        self.exchange = exchange
        self.input_estimate = input_estimate  # prompt tokens, should the backend say none
        self.bill = bill
        self.billed = False
        self.ended = False  # the client has the stream's last event
        self.shape = shape  # how the client's stream ends, and says it broke
        # (ms to the first token, when) for a trace's attempt span, when tracing is on
        self.on_first_token: Callable[[float, int], None] | None = None
        # what went to the client, for a trace that captures content
        self.on_data: Callable[[bytes], None] | None = None

    async def run(self, started: float) -> web.StreamResponse:
        first = await self._first_bytes()
        waited = (time.monotonic() - started) * 1000
        self.recorder.first_token(self.backend, waited)
        if self.on_first_token is not None:
            self.on_first_token(waited, time.time_ns())
        self.headers["Content-Type"] = "text/event-stream"
        self.headers["Cache-Control"] = "no-cache"
        out = EventStreamResponse(headers=self.headers)
        try:
            ended = await self._send(out, first, prepare=True)
            if await self._relay_rest(out, ended):
                self.recorder.served(self.backend, *self.usage())
                await self._send_closing(out)
        except ClientGone:  # the backend did its part: never held against it
            self.recorder.served(self.backend, *self.usage())
            if self.exchange.client_stuck:  # it reads nothing: no more waiting on it
                log.info("client read nothing of a stream from %s for the write timeout: "
                         "cut", self.backend.name)
                if self.request.transport is not None:
                    self.request.transport.abort()
            else:
                log.info("client left mid-stream from %s", self.backend.name)
        await self._bill_once()  # a stream cut short or left is billed for what went out
        with contextlib.suppress(ConnectionResetError):
            await out.write_eof()  # a no-op when [DONE] ended the response already
        return out

    def usage(self) -> tuple[Usage, bool]:
        """(usage, estimated): what the backend sent, billed by the larger of the usage it
        last reported and the token-carrying events relayed (servers stream about a
        token an event). A stream cut short has no final usage: Anthropic's then says
        only message_start's output of 1, an OpenAI-compatible one says none (the
        routing estimate of the input stands in for its prompt)."""
        reported, counted = self.translator.usage, self.translator.events
        if reported is None:
            return Usage(self.input_estimate, counted), True
        if counted > reported.completion_tokens:
            return msgspec.structs.replace(reported, completion_tokens=counted), True
        return reported, False

    async def _bill_once(self) -> None:
        if not self.billed:
            self.billed = True
            await self.bill(*self.usage())

    async def _first_bytes(self) -> bytes:
        """Read until there is something to send; a failure here is still retryable. An
        empty stream is an answer (llama.cpp's to a prompt over its context), not a
        sign that the backend is down."""
        try:
            async for chunk in self.chunks:
                self.exchange.reads += 1
                out = self.translator.feed(chunk)
                if out:
                    return out
        except UPSTREAM_ERRORS as exc:
            cause = connection_failure(exc)
            self.recorder.failed(self.backend, Outcome.FAILED_BEFORE_FIRST_BYTE,
                                 f"stream broke before the first byte: {cause}")
            raise UpstreamFailure(BackendError(
                f"{self.backend.name} dropped the stream ({cause})")) from None
        error = BackendError(f"{self.backend.name} closed the stream without data (llama.cpp "
                             "does this for a prompt longer than its context)",
                             code="empty_stream")
        answer = self.recorder.answered(self.backend, 200, "empty_stream")
        raise UpstreamFailure(error, answer)

    async def _send_closing(self, out: web.StreamResponse) -> None:
        """The backend ended its stream without its last event: the translator may
        still owe the client one (Anthropic's message_stop)."""
        if not self.ended:
            closing = self.translator.close()
            if closing:
                await self._send(out, closing)

    async def _relay_rest(self, out: web.StreamResponse, ended: bool) -> bool:
        """Relay to `[DONE]` or the end; False when the backend broke the stream first (the
        client is told). After `[DONE]` the rest is read but not sent: the client has its
        answer, and reading to the end lets the backend's connection serve again.

        A failed write leaves as ClientGone, never as one of UPSTREAM_ERRORS (aiohttp's
        reset error is both a ClientError and a ConnectionResetError), so only a failed
        read is the backend's fault."""
        try:
            async for chunk in self.chunks:
                self.exchange.reads += 1
                if ended:
                    continue
                data = self.translator.feed(chunk)
                if data:
                    ended = await self._send(out, data)
        except UPSTREAM_ERRORS as exc:
            if ended:
                log.info("%s broke its stream after [DONE]: %s", self.backend.name,
                         connection_failure(exc))
                return True
            return await self._broken(out, exc)
        return True

    async def _broken(self, out: web.StreamResponse, exc: BaseException) -> bool:
        cause = connection_failure(exc)
        self.recorder.failed(self.backend, Outcome.STREAM_BROKE, f"stream broke: {cause}")
        what = f"went silent ({exc})" if isinstance(exc, TimeoutError) \
            else f"dropped the stream ({cause})"
        await self._bill_once()
        await self._send(out, self.shape.error(f"{self.backend.name} {what} mid-response",
                                               "backend_stream_interrupted"))
        return False

    async def _send(self, out: web.StreamResponse, data: bytes, prepare: bool = False) -> bool:
        """Write data (preparing the response first); True when the data held `[DONE]` and
        so also ended the response, after the cost was recorded."""
        if self.on_data is not None:
            self.on_data(data)
        try:
            if prepare:
                await out.prepare(self.request)
            if data.endswith(self.shape.end):
                self.ended = True
                await self._bill_once()
                await self._write(out.write_eof(data))
                return True
            await self._write(out.write(data))
        except ConnectionResetError:  # aiohttp's ClientConnectionResetError included
            raise ClientGone from None
        return False

    async def _write(self, pending: Awaitable[None]) -> None:
        """A write to the client, under the watch: the time it waits on the client is not
        the backend's silence, and a client that reads nothing for the write limit is
        cut (the watch cancels us; that cancel alone becomes ClientGone)."""
        exchange = self.exchange
        exchange.writing = True
        try:
            await pending
        except asyncio.CancelledError:
            if exchange.client_stuck and exchange.cancel_was_ours_alone():
                raise ClientGone from None
            raise
        finally:
            exchange.writing = False
        exchange.writes += 1
