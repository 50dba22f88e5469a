"""Route a call, send it, retry on the next candidate before the first byte, never after."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import TYPE_CHECKING, NamedTuple

import aiohttp
import msgspec
from aiohttp import web

from nexus.adapters import ADAPTERS
from nexus.adapters.base import UpstreamRequest
from nexus.backends.backend import Backend
from nexus.backends.causes import connection_failure
from nexus.backends.recorder import Answer, Outcome, OutcomeRecorder
from nexus.client import BackendClient, UpstreamResponse
from nexus.client.errors import ConnectFailed
from nexus.config.schema import ServerConfig
from nexus.core.errors import (
    BackendError,
    BackendTimeout,
    ClientInputError,
    NexusError,
    NoViableBackend,
)
from nexus.core.types import Usage
from nexus.proxy.admission import Admission
from nexus.proxy.billing import Holds, spend_record
from nexus.proxy.call import OPENAI_STREAM, Call, Dialect
from nexus.proxy.content import Output
from nexus.proxy.feed import Feed
from nexus.proxy.headers import header_value, route_headers, sendable
from nexus.proxy.stall import Exchange, StallWatch
from nexus.proxy.streaming import Relay
from nexus.proxy.upstream import UpstreamFailure, classify_status
from nexus.proxy.waiting import QueueFull, WaitQueue
from nexus.routing.request import RoutingRequest
from nexus.routing.router import Router
from nexus.routing.types import Queue, Route, RoutingDecision
from nexus.store.base import SpendLedger

if TYPE_CHECKING:  # OpenTelemetry is imported only by a replica that traces
    from nexus.proxy.tracing import Tracing

log = logging.getLogger(__name__)
EVENT_STREAM = "text/event-stream"


class Books(NamedTuple):
    """Where a call's limits and money are kept: its admission under rate limits, its
    strict-budget holds, and the ledger its cost goes to."""

    admission: Admission
    holds: Holds
    ledger: SpendLedger


class Forwarder:
    def __init__(self, router: Router, client: BackendClient, recorder: OutcomeRecorder,
                 waiting: WaitQueue, books: Books, feed: Feed, server: ServerConfig,
                 max_retries: int) -> None:
        self.router = router
        self.client = client
        self.recorder = recorder
        self.waiting = waiting
        self.admission, self.holds, self.ledger = books
        self.feed = feed
        self.max_retries = max_retries
        self.tracing: Tracing | None = None  # set by the replica when tracing is on
        limit = server.request_timeout_seconds
        # The request timeout, and the client's write timeout, without a timer per request.
        self.watch = StallWatch(limit, write_limit_seconds=server.write_timeout_seconds)
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(limit, 10))

    async def serve(self, call: Call, request: web.Request) -> web.StreamResponse:
        if self.tracing is None:
            return await self._serve(call, request)
        with self.tracing.request(call, request.path, request.headers) as span:
            # A trace not sampled gets no spans inside (each costs the SDK tens of µs);
            # its context still goes on to the backend, saying so.
            call.traced = span.is_recording()
            return await self._serve(call, request)

    async def _serve(self, call: Call, request: web.Request) -> web.StreamResponse:
        answers: list[Answer] = []  # HTTP errors met on the way: settled when it ends
        started = time.monotonic()
        status, error = 500, None
        try:
            response = await self._try_candidates(call, request, answers)
            status = response.status
            return response
        except NexusError as exc:
            status, error = exc.status, exc
            raise
        finally:
            self.recorder.settle(answers, status < 400)
            self.feed.record(call, call.route, status, error,
                             (time.monotonic() - started) * 1000, call.cost_micro_usd)

    async def _try_candidates(self, call: Call, request: web.Request,
                              answers: list[Answer]) -> web.StreamResponse:
        excluded: set[str] = set()
        failure: NexusError | None = None
        for attempt in range(self.max_retries + 1):
            try:
                if call.traced:  # under a routing span
                    route = await self._routed(call, frozenset(excluded), attempt)
                else:  # the common case: no coroutine in between
                    routed = self._route(call, frozenset(excluded), attempt)
                    route = routed if isinstance(routed, Route) else await routed
                call.route = route
            except NoViableBackend as error:
                if failure is None:
                    raise self.router.with_retry_hint(error) from None
                break
            if self.holds.applies(route, call.tenant):
                refused = await self.holds.hold(route, call.spend_id, call.tenant)
                if refused is not None:  # strict budget: this backend would pass the limit
                    excluded.add(route.backend.name)
                    failure = refused
                    continue
            try:
                return await self._attempt(route, call, request)
            except ClientInputError:  # no other backend would take it either
                await self._let_go(route, call)
                raise
            except UpstreamFailure as exc:
                log.info("request %s: %s failed before the first byte: %s",
                         call.request_id, route.backend.name, exc.error.message)
                await self._let_go(route, call)
                if exc.answer is not None:
                    answers.append(exc.answer)
                excluded.add(route.backend.name)
                failure = exc.error
        assert failure is not None
        raise failure

    async def _let_go(self, route: Route, call: Call) -> None:
        """The route was not served: its strict-budget hold, if it took one, goes back."""
        if self.holds.applies(route, call.tenant):
            await self.holds.let_go(route, call.spend_id)

    async def _routed(self, call: Call, excluded: frozenset[str], attempt: int) -> Route:
        """The route, under a routing span that carries the decision and the queue wait."""
        assert self.tracing is not None
        started = time.monotonic()
        routed = self._route(call, excluded, attempt)
        route = routed if isinstance(routed, Route) else await routed
        self.tracing.routed(call, route, attempt, started)
        return route

    def _route(self, call: Call, excluded: frozenset[str],
               attempt: int) -> Route | Awaitable[Route]:
        """The route, or (when the decision is to queue) a wait for one."""
        request = RoutingRequest(model=call.model, endpoint=call.endpoint, excluded=excluded,
                                 attempt=attempt, requirements=call.requirements,
                                 flags=call.flags, request_id=call.request_id,
                                 tenant=call.tenant, affinity=call.affinity)
        decision = self.router.decide(request)
        if isinstance(decision, Route):  # the common case, with no coroutine in between
            return decision
        return self._queue(call, request, decision)

    async def _queue(self, call: Call, request: RoutingRequest,
                     decision: RoutingDecision) -> Route:
        """Wait for capacity while the decision is to queue, deciding again on each wake."""
        if not isinstance(decision, Queue) or not self.waiting.enabled:
            return self.router.outcome(request, decision)
        try:
            ticket = self.waiting.ticket(call.priority)
        except QueueFull as exc:
            raise NoViableBackend(f"{exc}; {decision.reason}", retry_after=1) from None
        while isinstance(decision, Queue) and await self.waiting.wait(ticket):
            decision = self.router.decide(request)
        return self.router.outcome(request, decision)

    async def _attempt(self, route: Route, call: Call,
                       request: web.Request) -> web.StreamResponse:
        if self.tracing is not None and call.traced:
            with self.tracing.attempt(route, call):
                return await self._attempt_untraced(route, call, request)
        return await self._attempt_untraced(route, call, request)

    async def _attempt_untraced(self, route: Route, call: Call,
                                request: web.Request) -> web.StreamResponse:
        try:
            with self.recorder.in_flight(route.backend):
                return await self._exchange(route, call, request)
        finally:
            self.waiting.wake_one()

    async def _exchange(self, route: Route, call: Call,
                        request: web.Request) -> web.StreamResponse:
        backend = route.backend
        adapter = ADAPTERS[backend.api]
        dialect = call.dialect
        upstream = self._build(route, call)
        started = time.monotonic()  # the loop's clock, without asking for the loop
        exchange = self.watch.open()
        try:
            async with self.client.post(upstream.url, upstream.body, upstream.headers,
                                        self.timeout) as response:
                exchange.response = response
                headers = self._headers(route, call, upstream)
                if response.status >= 400:
                    return await self._error(backend, response, headers, dialect)
                if call.stream and response.content_type == EVENT_STREAM:
                    return await self._stream(route, call, request, response, headers,
                                              started, exchange)
                raw = await response.read()
                if dialect is None:
                    body, reported = adapter.translate_body(raw, route.model)
                    usage, estimated = reported or self._estimate(route), reported is None
                else:
                    body, usage, estimated = dialect.reply(route, raw, self._estimate(route))
        except asyncio.CancelledError:
            if not exchange.cancel_was_ours_alone():
                raise
            raise self._timed_out(backend) from None
        except TimeoutError:
            raise self._timed_out(backend) from None
        except (aiohttp.ClientConnectorError, ConnectFailed) as exc:
            cause = connection_failure(exc)
            self.recorder.failed(backend, Outcome.FAILED_BEFORE_FIRST_BYTE, cause, refused=True)
            raise UpstreamFailure(BackendError(f"{backend.name} is unreachable: {cause}")) \
                from None
        except (aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            cause = connection_failure(exc)
            self.recorder.failed(backend, Outcome.FAILED_BEFORE_FIRST_BYTE,
                                 f"broken response: {cause}")
            raise UpstreamFailure(BackendError(
                f"{backend.name} sent a broken response ({cause})")) from None
        finally:
            self.watch.close(exchange)
        waited = (time.monotonic() - started) * 1000
        self.recorder.first_token(backend, waited)
        self._trace_answer(route, call, waited, body)
        self.recorder.served(backend, usage, estimated)
        await self._bill(call, route, usage, estimated)  # in the store before the answer leaves
        return web.Response(body=body, content_type="application/json", headers=headers)

    def _trace_answer(self, route: Route, call: Call, waited: float, body: bytes) -> None:
        if self.tracing is not None and call.traced:
            self.tracing.first_token(waited)
            if self.tracing.captures(route):
                self.tracing.answered(body)

    async def _stream(self, route: Route, call: Call, request: web.Request,
                      response: UpstreamResponse, headers: dict[str, str],
                      started: float, exchange: Exchange) -> web.StreamResponse:
        translator = ADAPTERS[route.backend.api].stream_translator(
            route.model, call.include_usage, count_events=True) if call.dialect is None \
            else call.dialect.stream_translator(route, call)

        tracing = self.tracing if call.traced else None
        output = Output() if tracing is not None and tracing.captures(route) else None

        async def bill(usage: Usage, estimated: bool) -> None:
            if tracing is not None and output is not None:
                tracing.streamed(output)
            await self._bill(call, route, usage, estimated)

        relay = Relay(response, request, headers, translator, route.backend, self.recorder,
                      exchange, route.cost_estimate.input_tokens, bill,
                      OPENAI_STREAM if call.dialect is None else call.dialect.shape)
        if tracing is not None:
            relay.on_first_token = tracing.first_token
            relay.on_data = output.feed if output is not None else None
        return await relay.run(started)

    @staticmethod
    def _headers(route: Route, call: Call, upstream: UpstreamRequest) -> dict[str, str]:
        """The route's X-Nexus-* headers, what the translation dropped, the rate limits."""
        headers = route_headers(route, call.request_id)
        for name, text in upstream.notes.items():
            headers[name] = header_value(text)
        if call.rate_headers:
            headers.update(call.rate_headers)
        return headers

    @staticmethod
    def _estimate(route: Route) -> Usage:
        return Usage(route.cost_estimate.input_tokens, route.cost_estimate.output_tokens)

    def _timed_out(self, backend: Backend) -> UpstreamFailure:
        self.recorder.failed(backend, Outcome.TIMED_OUT, f"timed out after {self.watch.limit:g} s")
        return UpstreamFailure(BackendTimeout(
            f"{backend.name} sent nothing for {self.watch.limit:g}s"))

    def _build(self, route: Route, call: Call) -> UpstreamRequest:
        """The request for this route's backend. What fails here fails on the client's
        input, not on the backend: a 400 for the client, and the backend's health is
        not touched. A request this backend's API cannot take tries the next one."""
        try:
            upstream = self._upstream(route, call) if call.dialect is None \
                else call.dialect.upstream(route, call)
        except NexusError as error:  # this API cannot take the request (n > 1, ...)
            raise UpstreamFailure(error) from None
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ClientInputError(f"The request cannot be translated for "
                                   f"{route.backend.name}: {exc.__class__.__name__}") from None
        for name, value in upstream.headers.items():
            if not sendable(value):
                raise ClientInputError(f"The {name} header holds characters HTTP cannot "
                                       "carry", param=name)
        if self.tracing is not None:  # the backend joins the trace
            self.tracing.propagate(upstream.headers)
        return upstream

    @staticmethod
    def _upstream(route: Route, call: Call) -> UpstreamRequest:
        """The request to send: the client's bytes when nothing must change in them."""
        adapter = ADAPTERS[route.backend.api]
        if route.model == call.model:
            raw = adapter.forward_raw(route.backend, call.endpoint, call.body, call.stream)
            if raw is not None:
                return raw
        payload = call.payload if route.model == call.model \
            else {**call.payload, "model": route.model}
        return adapter.prepare(route.backend, call.endpoint, payload, call.stream)

    async def _bill(self, call: Call, route: Route, usage: Usage, estimated: bool) -> None:
        """Settle what a served request used: its tokens against its rate limits, and,
        on a paid backend, its cost (in the store before the answer's last byte)."""
        self.admission.settle(call.rate_check, usage.prompt_tokens + usage.completion_tokens)
        if self.tracing is not None and call.traced:
            self.tracing.used(usage, estimated)
        if call.dialect is not None:
            await call.dialect.completed()
        self.ledger.count_request(route.model, int(time.time()) // 3600)  # pre-warm history
        if route.backend.free:
            return
        record = spend_record(call.spend_id, route, usage, estimated,
                              self.holds.applies(route, call.tenant), call.tenant)
        self.recorder.stats.tenant_spend(record)
        call.cost_micro_usd = record.cost_micro_usd
        await self.ledger.commit_spend(record)

    async def _error(self, backend: Backend, response: UpstreamResponse,
                     headers: dict[str, str], dialect: Dialect | None) -> web.Response:
        body = await response.read()
        error, failure = classify_status(backend, response.status, body,
                                         response.headers.get("Retry-After"), self.recorder)
        if failure is not None:
            raise failure
        if dialect is not None:
            return dialect.error_response(error, headers)
        return web.Response(status=error.status, body=msgspec.json.encode(error.body()),
                            content_type="application/json", headers=headers)
