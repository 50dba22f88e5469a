"""Route a call, send it, retry on the next candidate before the first byte, never after."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable

import aiohttp
from aiohttp import web

from nexus.adapters import ADAPTERS
from nexus.adapters.base import UpstreamRequest, Usage
from nexus.backends.backend import Backend
from nexus.config.schema import BudgetConfig, ServerConfig
from nexus.errors import BackendError, BackendTimeout, NexusError, NoViableBackend
from nexus.pipeline.types import Queue, Route, RoutingDecision
from nexus.routing.request import RoutingRequest
from nexus.routing.router import Router
from nexus.server.call import Call
from nexus.server.headers import route_headers
from nexus.server.holds import Holds
from nexus.server.spend import spend_record
from nexus.server.stall import StallWatch
from nexus.server.stats import Stats
from nexus.server.streaming import relay_stream
from nexus.server.upstream import UpstreamFailure, classify_status, normalize_error
from nexus.server.waiting import QueueFull, WaitQueue
from nexus.store.base import Store

log = logging.getLogger(__name__)
EVENT_STREAM = "text/event-stream"


class Forwarder:
    def __init__(self, router: Router, session: aiohttp.ClientSession, server: ServerConfig,
                 max_retries: int, stats: Stats, store: Store, waiting: WaitQueue,
                 budget: BudgetConfig | None = None) -> None:
        self.router = router
        self.holds = Holds(store, budget, server.request_timeout_seconds)
        self.session = session
        self.max_retries = max_retries
        self.stats = stats
        self.store = store
        self.waiting = waiting
        limit = server.request_timeout_seconds
        self.watch = StallWatch(limit)  # the request timeout, without a timer per request
        self.timeout = aiohttp.ClientTimeout(total=None, sock_connect=min(limit, 10))

    async def serve(self, call: Call, request: web.Request) -> web.StreamResponse:
        excluded: set[str] = set()
        failure: NexusError | None = None
        for attempt in range(self.max_retries + 1):
            try:
                routed = self._route(call, frozenset(excluded), attempt)
                route = routed if isinstance(routed, Route) else await routed
            except NoViableBackend:
                if failure is None:
                    raise
                break
            if self.holds.applies(route):
                refused = await self.holds.hold(route, call.spend_id)
                if refused is not None:  # strict budget: this backend would pass the limit
                    excluded.add(route.backend.name)
                    failure = refused
                    continue
            try:
                return await self._attempt(route, call, request)
            except UpstreamFailure as exc:
                log.info("request %s: %s failed before the first byte: %s",
                         call.request_id, route.backend.name, exc.error.message)
                if self.holds.applies(route):
                    await self.holds.let_go(route, call.spend_id)
                route.backend.metrics.error()
                self.stats.failure(route.backend.name, exc.error.code)
                excluded.add(route.backend.name)
                failure = exc.error
        assert failure is not None
        raise failure

    def _route(self, call: Call, excluded: frozenset[str],
               attempt: int) -> Route | Awaitable[Route]:
        """The route, or (when the decision is to queue) a wait for one."""
        request = RoutingRequest(model=call.model, endpoint=call.endpoint, excluded=excluded,
                                 attempt=attempt, requirements=call.requirements,
                                 flags=call.flags, request_id=call.request_id)
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
        backend = route.backend
        backend.in_flight += 1
        try:
            return await self._exchange(route, call, request)
        finally:
            backend.in_flight -= 1
            self.waiting.wake_one()

    async def _exchange(self, route: Route, call: Call,
                        request: web.Request) -> web.StreamResponse:
        backend = route.backend
        adapter = ADAPTERS[backend.api]
        upstream = self._upstream(route, call)
        started = time.monotonic()  # the loop's clock, without asking for the loop
        exchange = self.watch.open()
        try:
            async with self.session.post(upstream.url, data=upstream.body,
                                         headers=upstream.headers,
                                         timeout=self.timeout) as response:
                exchange.response = response
                headers = route_headers(route, call.request_id)
                if response.status >= 400:
                    return await self._error(backend, response, headers)
                if call.stream and response.content_type == EVENT_STREAM:
                    translator = adapter.stream_translator(route.model, call.include_usage,
                                                           count_events=not backend.free)
                    out = await relay_stream(response, request, headers, translator,
                                             backend, self.stats, started, exchange)
                    self._bill(call, route, translator.usage, translator.events)
                    return out
                body, usage = adapter.translate_body(await response.read(), route.model)
        except asyncio.CancelledError:
            if not exchange.cancel_was_ours_alone():
                raise
            raise self._timed_out(backend) from None
        except TimeoutError:
            raise self._timed_out(backend) from None
        except aiohttp.ClientConnectorError as exc:
            backend.health.unreachable(f"connection failed: {exc.os_error.strerror}")
            raise UpstreamFailure(BackendError(f"{backend.name} is unreachable")) from None
        except (aiohttp.ClientError, ValueError, KeyError, TypeError) as exc:
            backend.health.failure(f"broken response: {exc.__class__.__name__}")
            raise UpstreamFailure(BackendError(
                f"{backend.name} sent a broken response ({exc.__class__.__name__})")) from None
        finally:
            self.watch.close(exchange)
        self._succeeded(backend, (time.monotonic() - started) * 1000)
        self.stats.response(backend.name, 200, usage)
        self._bill(call, route, usage)
        return web.Response(body=body, content_type="application/json", headers=headers)

    def _timed_out(self, backend: Backend) -> UpstreamFailure:
        backend.health.failure("timed out")
        return UpstreamFailure(BackendTimeout(
            f"{backend.name} sent nothing for {self.watch.limit:g}s"))

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

    def _bill(self, call: Call, route: Route, usage: Usage | None,
              streamed_events: int | None = None) -> None:
        if not route.backend.free:
            self.store.record_spend(spend_record(call.spend_id, route, usage, streamed_events,
                                                 self.holds.strict))

    @staticmethod
    def _succeeded(backend: Backend, millis: float) -> None:
        backend.observe_latency(millis)
        backend.metrics.first_token(millis)  # a whole answer's first token came with it
        backend.metrics.success()
        backend.health.success()

    async def _error(self, backend: Backend, response: aiohttp.ClientResponse,
                     headers: dict[str, str]) -> web.Response:
        body = await response.read()
        failure = classify_status(backend, response.status, body,
                                  response.headers.get("Retry-After"))
        if failure is not None:
            raise failure
        self.stats.response(backend.name, response.status, None)
        _, shaped = normalize_error(response.status, body)
        return web.Response(status=response.status, body=shaped,
                            content_type="application/json", headers=headers)
