"""OpenTelemetry traces of a call's trip: one trace per request with a routing span and
one CLIENT span per attempt, the client's traceparent continued to the backend, no
content for restricted traffic, and spans that reach a real OTLP/HTTP receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from nexus.proxy.tracing import Tracing
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
    read_sse,
    until,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def traced(gw: RunningGateway, capture_content: bool = False) -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gw.gateway.forwarder.tracing = Tracing(provider.get_tracer("test"), capture_content)
    return exporter


def by_kind(spans: tuple[ReadableSpan, ...], kind: SpanKind) -> list[ReadableSpan]:
    return sorted((s for s in spans if s.kind is kind), key=lambda s: s.start_time or 0)


async def test_a_streamed_request_with_a_retry_is_one_trace_of_routing_and_attempt_spans(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    broken = await mock_backend("broken", drop_after_chunks=0)  # fails before the first byte
    good = await mock_backend("good")
    gw = await gateway(make_config([backend(broken, priority=100, type="vllm", engine="off"),
                                    backend(good, priority=1, type="vllm", engine="off")]))
    exporter = traced(gw)
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True),
                         headers={"traceparent": PARENT}) as r:
        assert r.status == 200
        await read_sse(r)
    spans = exporter.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}  # one trace
    (server,) = by_kind(spans, SpanKind.SERVER)
    assert server.name == "POST /v1/chat/completions"
    routing = [s for s in spans if s.name.startswith("route ")]
    assert [s.attributes["nexus.route.backend"] for s in routing] == ["broken", "good"]
    first, second = by_kind(spans, SpanKind.CLIENT)
    for attempt in (first, second):
        assert attempt.name == "chat mock-model"
        assert attempt.parent is not None
        assert attempt.parent.span_id == server.context.span_id
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
        assert attempt.attributes["gen_ai.provider.name"] == "vllm"
        assert attempt.attributes["gen_ai.request.model"] == "mock-model"
    assert first.attributes["server.address"] == "broken"
    assert first.attributes["error.type"] == "UpstreamFailure"
    assert second.attributes["server.address"] == "good"
    assert second.attributes["gen_ai.usage.output_tokens"] > 0
    assert second.attributes["gen_ai.server.time_to_first_token"] > 0
    assert [e.name for e in second.events] == ["gen_ai.first_token"]
    sent = good.chat_requests()[-1].headers["traceparent"]  # the backend joins the trace
    assert sent.split("-")[1] == TRACE_ID
    assert sent.split("-")[2] == format(second.context.span_id, "016x")


async def test_content_only_when_asked_and_never_for_restricted_traffic(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock, zone="restricted", api_key_env="GPU_KEY")]),
                       {"GPU_KEY": "sk-never-in-a-span"})
    exporter = traced(gw, capture_content=True)
    async with http.post(gw.url + "/v1/chat/completions", json=chat()) as r:
        assert r.status == 200
    async with http.post(gw.url + "/v1/chat/completions", json=chat(),
                         headers={"X-Nexus-Privacy": "restricted"}) as r:
        assert r.status == 200
    open_attempt, restricted_attempt = by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)
    assert "gen_ai.input.messages" in open_attempt.attributes
    assert "gen_ai.input.messages" not in restricted_attempt.attributes
    assert "gen_ai.output.messages" in open_attempt.attributes
    assert "gen_ai.output.messages" not in restricted_attempt.attributes
    everything = repr([dict(s.attributes or {}) for s in exporter.get_finished_spans()])
    assert "sk-never-in-a-span" not in everything


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/messages", "/v1/responses"])
@pytest.mark.parametrize("stream", [False, True])
async def test_captured_content_holds_the_answer_as_the_client_saw_it(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        path: str, stream: bool) -> None:
    mock = await mock_backend("gpu", reply="the answer is 42")
    gw = await gateway(make_config([backend(mock)]))
    exporter = traced(gw, capture_content=True)
    body = {**chat(stream=stream), "max_tokens": 64} if path != "/v1/responses" else \
        {"model": "mock-model", "input": "hi", "stream": stream}
    async with http.post(gw.url + path, json=body) as r:
        assert r.status == 200
        await r.read()
    (attempt,) = by_kind(exporter.get_finished_spans(), SpanKind.CLIENT)
    (output,) = json.loads(str(attempt.attributes["gen_ai.output.messages"]))
    assert output["role"] == "assistant"
    (part,) = output["parts"]
    assert part["type"] == "text"
    assert part["content"].strip() == "the answer is 42"  # the mock's words, a space each
    assert output["finish_reason"] in ("stop", "end_turn", "completed")


async def test_no_answer_content_unless_asked(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)]))
    exporter = traced(gw)
    for stream in (False, True):
        async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=stream)) as r:
            await r.read()
    for span in exporter.get_finished_spans():
        assert "gen_ai.output.messages" not in (span.attributes or {})
        assert "gen_ai.input.messages" not in (span.attributes or {})


async def test_tracing_is_off_unless_asked(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)]))
    assert gw.gateway.forwarder.tracing is None


def test_a_replica_without_tracing_imports_none_of_its_code() -> None:
    code = ("import sys, asyncio\n"
            "from nexus.http.app import create_app\n"
            "from nexus.config.schema import Config\n"
            "from nexus.http.context import GATEWAY\n"
            "app = create_app(Config(), {})\n"
            "async def run():\n"
            "    async with app[GATEWAY].running():\n"
            "        pass\n"
            "asyncio.run(run())\n"
            "print('nexus.proxy.tracing' in sys.modules,"
            " 'opentelemetry.sdk.trace.export' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.split() == ["False", "False"]


@pytest.fixture
async def receiver() -> Any:
    """A real OTLP/HTTP receiver on loopback, decoding what it is sent."""
    received: list[ExportTraceServiceRequest] = []

    async def traces(request: web.Request) -> web.Response:
        message = ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        received.append(message)
        return web.Response(body=b"", content_type="application/x-protobuf")

    app = web.Application()
    app.router.add_post("/v1/traces", traces)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", received
    await runner.cleanup()


async def test_spans_reach_a_real_otlp_http_receiver(
        receiver: Any, mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    url, received = receiver
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)], tracing={
        "enabled": True, "endpoint": url, "service_name": "nexus-test"}))
    assert gw.gateway.forwarder.tracing is not None
    async with http.post(gw.url + "/v1/chat/completions", json=chat()) as r:
        assert r.status == 200
    await gw.stop()  # the provider flushes its batch as the replica stops

    def names() -> set[str]:
        return {span.name for message in received for resource in message.resource_spans
                for scope in resource.scope_spans for span in scope.spans}

    await until(lambda: {"POST /v1/chat/completions", "chat mock-model"} <= names(), within=30)
    service = {attribute.value.string_value for message in received
               for resource in message.resource_spans
               for attribute in resource.resource.attributes
               if attribute.key == "service.name"}
    assert service == {"nexus-test"}


def test_the_standard_variables_turn_tracing_on_and_the_file_wins() -> None:
    from nexus.config.schema import TracingConfig
    from nexus.proxy.tracing import sample_ratio
    env = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.25"}
    assert sample_ratio(TracingConfig(), env) == 0.25
    assert sample_ratio(TracingConfig(sample_ratio=0.5), env) == 0.5
    assert sample_ratio(TracingConfig(), {"OTEL_TRACES_SAMPLER": "always_off"}) == 0.0


async def test_a_trace_not_sampled_records_nothing_and_tells_the_backend_so(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)]))
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gw.gateway.forwarder.tracing = Tracing(provider.get_tracer("test"))
    async with http.post(gw.url + "/v1/chat/completions", json=chat()) as r:
        assert r.status == 200
    assert exporter.get_finished_spans() == ()
    flags = mock.chat_requests()[-1].headers["traceparent"].split("-")[3]
    assert int(flags, 16) & 1 == 0  # "not sampled": the engine need not trace it either
