"""Opt-in OpenTelemetry traces of one call's trip, under the GenAI conventions.

A SERVER span for the request (continuing the client's W3C `traceparent`), a child
span for routing that carries the pipeline's decision, and one CLIENT span per upstream
attempt (`chat {model}`) with `gen_ai.*` attributes, its usage, the time to the first
token of a stream, and `error.type` when it failed; retries and fallbacks each get
their own. The attempt's context goes on to the backend in `traceparent`, so an
engine with tracing of its own joins the trace.

Prompt and completion content is recorded only with `capture_content`, and never for
a request routed under restricted privacy. Keys and tenant secrets never are.

This module imports OpenTelemetry, so only a replica with tracing on imports it (the
`otel` extra); with tracing off the forwarder holds None and pays one `is None` test
per request.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from typing import Any

import msgspec
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from nexus.config.schema import TracingConfig
from nexus.core.types import Usage
from nexus.proxy.call import Call
from nexus.proxy.content import Output
from nexus.routing.types import Route

# gen_ai.provider.name of the cloud types; others: the backend's type (vllm, ollama, ...)
PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gcp.gemini"}
DEFAULT_ENDPOINT = "http://localhost:4318"  # an OTLP/HTTP collector's usual address


class Tracing:
    def __init__(self, tracer: trace.Tracer, capture_content: bool = False) -> None:
        self.tracer = tracer
        self.capture_content = capture_content

    @contextlib.contextmanager
    def request(self, call: Call, path: str, headers: Mapping[str, str]) -> Iterator[Span]:
        """The SERVER span of one request, under the client's trace when it sent one."""
        with self.tracer.start_as_current_span(f"POST {path}", context=extract(headers),
                                               kind=SpanKind.SERVER) as span:
            if span.is_recording():  # a trace not sampled costs no attributes
                span.set_attributes({"http.request.method": "POST", "url.path": path,
                                     "gen_ai.request.model": call.model,
                                     "nexus.request_id": call.request_id})
            yield span

    def routed(self, call: Call, route: Route, attempt: int, started: float) -> None:
        """The routing span, from `started` (time.monotonic()) to now: the decision, who
        decided it, what was left, what was dropped and why, the queue wait."""
        waited = time.monotonic() - started
        span = self.tracer.start_span(f"route {call.model}",
                                      start_time=time.time_ns() - int(waited * 1e9))
        if not span.is_recording():
            return
        span.set_attribute("nexus.route.attempt", attempt)
        span.set_attribute("nexus.route.wait_ms", round(waited * 1000, 3))
        span.set_attribute("nexus.route.backend", route.backend.name)
        span.set_attribute("nexus.route.reason", route.reason)
        span.set_attribute("nexus.route.decided_by",
                           "affinity" if route.reason.startswith("affinity") else
                           "load" if route.reason.startswith("load") else "score")
        span.set_attribute("nexus.route.candidates", [b.name for b in route.standing])
        span.set_attribute("nexus.route.rejections",
                           [f"{backend.name}:{stage}" for backend, stage, _ in route.drops])
        span.end()

    @contextlib.contextmanager
    def attempt(self, route: Route, call: Call) -> Iterator[Span]:
        """One CLIENT span per upstream attempt."""
        with self.tracer.start_as_current_span(f"chat {route.model}", kind=SpanKind.CLIENT,
                                               record_exception=False) as span:
            if span.is_recording():
                self._describe(span, route, call)
            try:
                yield span
            except Exception as exc:
                span.set_attribute("error.type", exc.__class__.__name__)
                span.set_status(Status(StatusCode.ERROR, str(exc)[:200]))
                raise

    def _describe(self, span: Span, route: Route, call: Call) -> None:
        backend = route.backend
        span.set_attributes({
            "gen_ai.operation.name": "chat" if call.endpoint == "chat" else call.endpoint,
            "gen_ai.provider.name": PROVIDERS.get(backend.config.type, backend.config.type),
            "gen_ai.request.model": call.model, "gen_ai.response.model": route.model,
            "server.address": backend.name, "nexus.backend.url": backend.shown_url,
            "nexus.stream": call.stream})
        if self.capture_content and not route.restricted:
            span.set_attribute("gen_ai.input.messages",
                               msgspec.json.encode(call.payload.get("messages")  # a Responses
                                                  or call.payload.get("input")).decode())

    def captures(self, route: Route) -> bool:
        """Whether this attempt's content may go in its span."""
        return self.capture_content and not route.restricted

    @staticmethod
    def answered(body: bytes) -> None:
        """A whole (non-streamed) answer's content, as `gen_ai.output.messages`."""
        span = trace.get_current_span()
        if span.is_recording():
            output = Output()
            output.whole(body)
            span.set_attribute("gen_ai.output.messages", output.messages())

    @staticmethod
    def streamed(output: Output) -> None:
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("gen_ai.output.messages", output.messages())

    @staticmethod
    def propagate(headers: dict[str, str]) -> None:
        """Send the current (attempt) span's context on to the backend."""
        inject(headers, context=otel_context.get_current())

    @staticmethod
    def used(usage: Usage, estimated: bool) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute("gen_ai.usage.input_tokens", usage.prompt_tokens)
        span.set_attribute("gen_ai.usage.output_tokens", usage.completion_tokens)
        span.set_attribute("gen_ai.usage.cache_read.input_tokens", usage.cache_read_tokens)
        span.set_attribute("nexus.usage.estimated", estimated)

    @staticmethod
    def first_token(millis: float, at_ns: int | None = None) -> None:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        span.set_attribute("gen_ai.server.time_to_first_token", millis / 1000)
        span.add_event("gen_ai.first_token", {"time_to_first_token_ms": round(millis, 3)},
                       timestamp=at_ns)


def start_tracing(config: TracingConfig, env: Mapping[str, str]) -> tuple[Tracing, Any]:
    """The tracer a replica traces with, and its provider (to flush and stop), from
    `[tracing]` and the standard OTEL_* variables (the file wins where both are set)."""
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    endpoint = config.endpoint or env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or DEFAULT_ENDPOINT
    name = config.service_name or env.get("OTEL_SERVICE_NAME") or "nexus"
    provider = TracerProvider(resource=Resource.create({"service.name": name}),
                              sampler=ParentBased(TraceIdRatioBased(sample_ratio(config, env))))
    provider.add_span_processor(BatchSpanProcessor(
        OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")))
    return Tracing(provider.get_tracer("nexus"), config.capture_content), provider


def sample_ratio(config: TracingConfig, env: Mapping[str, str]) -> float:
    if config.sample_ratio is not None:
        return config.sample_ratio
    sampler = env.get("OTEL_TRACES_SAMPLER", "parentbased_always_on")
    if sampler.endswith("always_off"):
        return 0.0
    if sampler.endswith("traceidratio"):
        try:
            return min(1.0, max(0.0, float(env.get("OTEL_TRACES_SAMPLER_ARG", "1.0"))))
        except ValueError:
            return 1.0
    return 1.0
