"""Forwarding through the gateway to real mock servers: bodies, headers, retries, streams."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    backend,
    chat,
    make_config,
    post,
    read_sse,
)


async def test_chat_is_forwarded_with_unknown_fields_and_routing_headers(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu-1", models=["llama3:8b"])
    gw = await gateway(make_config([backend(mock, zone="restricted")]))
    body = chat("llama3:8b", temperature=0.2, nexus_unknown_field={"kept": True})
    status, headers, answer = await post(http, gw.url, body, **{"X-Request-Id": "req-42"})
    assert status == 200
    assert answer["choices"][0]["message"]["content"].startswith("hello from gpu-1")  # type: ignore[index]
    sent = mock.chat_requests()[0].body
    assert sent["nexus_unknown_field"] == {"kept": True}
    assert sent["temperature"] == 0.2
    assert headers["X-Nexus-Backend"] == "gpu-1"
    assert headers["X-Nexus-Backend-Type"] == "local"
    assert headers["X-Nexus-Model"] == "llama3:8b"
    assert headers["X-Nexus-Privacy-Zone"] == "restricted"
    assert headers["X-Nexus-Route-Reason"].startswith("smart")
    assert headers["X-Nexus-Request-Id"] == "req-42"


async def test_alias_rewrites_the_model_sent_to_the_backend(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", models=["llama3:70b"])
    gw = await gateway(make_config([backend(mock)], routing={"aliases": {"gpt-4": "llama3:70b"}}))
    status, headers, _ = await post(http, gw.url, chat("gpt-4"))
    assert status == 200
    assert mock.chat_requests()[0].body["model"] == "llama3:70b"
    assert headers["X-Nexus-Model"] == "llama3:70b"
    assert "X-Nexus-Fallback-Model" not in headers


async def test_fallback_model_is_named_in_a_header(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("small", models=["qwen2:7b"])
    config = make_config([backend(mock), {"name": "big", "url": "http://127.0.0.1:9",
                                          "models": ["llama3:70b"]}],
                         routing={"fallbacks": {"llama3:70b": ["qwen2:7b"]}})
    gw = await gateway(config)
    status, headers, _ = await post(http, gw.url, chat("llama3:70b"))
    assert status == 200
    assert headers["X-Nexus-Fallback-Model"] == "qwen2:7b"
    assert mock.chat_requests()[0].body["model"] == "qwen2:7b"


async def test_request_id_is_generated_when_absent(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend(models=["mock-model"])
    gw = await gateway(make_config([backend(mock)]))
    _, headers, _ = await post(http, gw.url, chat())
    assert len(headers["X-Nexus-Request-Id"]) == 32


async def test_5xx_before_the_first_byte_retries_on_the_next_candidate(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    bad = await mock_backend("bad", status=500)
    good = await mock_backend("good")
    gw = await gateway(make_config([backend(bad, priority=100), backend(good, priority=1)]))
    status, headers, _ = await post(http, gw.url, chat())
    assert status == 200
    assert headers["X-Nexus-Backend"] == "good"
    assert "retry=1" in headers["X-Nexus-Route-Reason"]
    assert len(bad.chat_requests()) == 1


async def test_connection_refused_retries_and_marks_the_backend_down(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    good = await mock_backend("good")
    dead = {"name": "dead", "url": "http://127.0.0.1:9", "models": ["mock-model"],
            "priority": 100}
    config = make_config([dead, backend(good, priority=1, models=["mock-model"])],
                         health_check={"enabled": False})
    gw = await gateway(config)
    status, headers, _ = await post(http, gw.url, chat())
    assert (status, headers["X-Nexus-Backend"]) == (200, "good")
    dead_backend = gw.gateway.registry.get("dead")
    assert dead_backend is not None
    assert dead_backend.health.state.value == "unhealthy"


async def test_timeout_retries_then_504_when_nothing_answers(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    slow = await mock_backend("slow", delay=5)
    config = make_config([backend(slow, models=["mock-model"])],
                         server={"request_timeout_seconds": 0.2},
                         health_check={"enabled": False}, routing={"max_retries": 0})
    gw = await gateway(config)
    status, _, answer = await post(http, gw.url, chat())
    assert status == 504
    assert answer["error"]["code"] == "backend_timeout"  # type: ignore[index]


async def test_all_candidates_failing_gives_502_in_openai_shape(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    a = await mock_backend("a", status=500)
    b = await mock_backend("b", status=502)
    config = make_config([backend(a, models=["mock-model"]), backend(b, models=["mock-model"])],
                         health_check={"enabled": False})
    gw = await gateway(config)
    status, headers, answer = await post(http, gw.url, chat())
    assert status == 502
    assert set(answer["error"]) >= {"message", "type", "code", "param"}  # type: ignore[arg-type]
    assert "X-Nexus-Request-Id" in headers


async def test_retries_stop_at_max_retries(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mocks = [await mock_backend(f"m{i}", status=500) for i in range(4)]
    config = make_config([backend(m, models=["mock-model"]) for m in mocks],
                         routing={"max_retries": 1}, health_check={"enabled": False})
    gw = await gateway(config)
    status, _, _ = await post(http, gw.url, chat())
    assert status == 502
    assert sum(len(m.chat_requests()) for m in mocks) == 2


async def test_client_errors_are_passed_through_not_retried(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    a = await mock_backend("a", status=400)
    b = await mock_backend("b")
    gw = await gateway(make_config([backend(a, priority=100), backend(b, priority=1)]))
    status, headers, answer = await post(http, gw.url, chat())
    assert status == 400
    assert headers["X-Nexus-Backend"] == "a"
    assert answer["error"]["message"] == "mock a failing"  # type: ignore[index]
    assert b.chat_requests() == []


async def test_loading_backend_is_marked_loading_and_the_next_one_answers(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    loading = await mock_backend("loading")
    good = await mock_backend("good")
    gw = await gateway(make_config([backend(loading, priority=100), backend(good, priority=1)]))
    loading.set(loading=True, loading_eta=42)
    status, headers, _ = await post(http, gw.url, chat())
    assert (status, headers["X-Nexus-Backend"]) == (200, "good")
    state = gw.gateway.registry.get("loading")
    assert state is not None
    assert state.health.state.value == "loading"
    assert state.health.eta is not None


async def test_stream_is_relayed_chunk_by_chunk(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", chunks=3, reply="one two three")
    mock.hold = True  # the mock sends chunk 1, then waits until we saw it
    gw = await gateway(make_config([backend(mock)]))
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers["X-Nexus-Backend"] == "gpu"
        role = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
        assert json.loads(role[6:])["choices"][0]["delta"]["role"] == "assistant"
        first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), 10)
        assert json.loads(first[6:])["choices"][0]["delta"]["content"] == "one "
        mock.release.set()
        rest = await read_sse(response)
    assert rest[-1] == "[DONE]"
    contents = [json.loads(e)["choices"][0]["delta"].get("content") for e in rest[:-1]]
    assert contents == ["two ", "three ", None]


async def test_stream_asks_backend_for_usage_but_hides_it_unless_asked(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)]))
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as response:
        events = await read_sse(response)
    assert mock.chat_requests()[0].body["stream_options"] == {"include_usage": True}
    assert not any('"usage"' in e for e in events)
    assert gw.gateway.stats.completion_tokens["gpu"] == 3


async def test_stream_body_goes_as_sent_plus_the_usage_request(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)]))
    sent = chat(stream=True, seed=7, top_k=5, x_vendor={"nested": [1, 2]})
    async with http.post(gw.url + "/v1/chat/completions", json=sent) as response:
        await read_sse(response)
    received = mock.chat_requests()[0].body
    assert received == {**sent, "stream_options": {"include_usage": True}}


async def test_stream_merges_usage_into_the_clients_own_stream_options(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)]))
    sent = chat(stream=True, stream_options={"include_usage": False, "x_keep": 1})
    async with http.post(gw.url + "/v1/chat/completions", json=sent) as response:
        events = await read_sse(response)
    options = mock.chat_requests()[0].body["stream_options"]
    assert options == {"include_usage": True, "x_keep": 1}
    assert not any('"usage"' in e for e in events)  # the client said no
    assert gw.gateway.stats.completion_tokens["gpu"] == 3


async def test_stream_keeps_the_usage_chunk_when_the_client_asked(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)]))
    body = chat(stream=True, stream_options={"include_usage": True})
    async with http.post(gw.url + "/v1/chat/completions", json=body) as response:
        events = await read_sse(response)
    usage = [json.loads(e) for e in events if '"usage"' in e]
    assert usage[0]["usage"]["completion_tokens"] == 3


async def test_done_ends_the_response_and_the_backend_connection_serves_again(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    mock.hold_after_done = True  # the backend sends [DONE], then keeps its response open
    gw = await gateway(make_config([backend(mock)]))
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as r:
        events = await asyncio.wait_for(read_sse(r), 10)  # ends without the backend's end
    assert events[-1] == "[DONE]"
    mock.release.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while gw.gateway.stats.responses["gpu", 200] == 0:  # the gateway read the backend's end
        assert loop.time() < deadline
        await asyncio.sleep(0.01)
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as r:
        assert (await read_sse(r))[-1] == "[DONE]"
    first, second = mock.chat_requests()
    assert first.client_port == second.client_port  # one kept-alive connection


async def test_stream_failing_before_the_first_byte_goes_to_the_next_candidate(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    broken = await mock_backend("broken", drop_after_chunks=0)
    good = await mock_backend("good")
    gw = await gateway(make_config([backend(broken, priority=100), backend(good, priority=1)]))
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as response:
        assert response.headers["X-Nexus-Backend"] == "good"
        events = await read_sse(response)
    assert events[-1] == "[DONE]"


async def test_stream_breaking_after_the_first_byte_ends_with_an_sse_error(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    broken = await mock_backend("broken", drop_after_chunks=1)
    good = await mock_backend("good")
    gw = await gateway(make_config([backend(broken, priority=100), backend(good, priority=1)]))
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as response:
        assert response.status == 200
        events = await read_sse(response)
    assert json.loads(events[1])["choices"][0]["delta"]["content"] == "hello "  # after the role
    error = json.loads(events[-1])["error"]
    assert error["code"] == "backend_stream_interrupted"
    assert good.chat_requests() == []  # never retried after the first byte


async def test_completions_and_embeddings_are_forwarded(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", models=["embed", "mock-model"])
    gw = await gateway(make_config([backend(mock)]))
    async with http.post(gw.url + "/v1/completions",
                         json={"model": "mock-model", "prompt": "Say hi"}) as r:
        assert r.status == 200
        assert (await r.json())["object"] == "text_completion"
    async with http.post(gw.url + "/v1/embeddings",
                         json={"model": "embed", "input": ["a", "b"]}) as r:
        assert r.status == 200
        assert len((await r.json())["data"]) == 2
    assert [r.path for r in mock.chat_requests()] == ["/v1/completions", "/v1/embeddings"]


async def test_models_lists_healthy_models_and_aliases(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    up = await mock_backend("up", models=["llama3:8b"])
    config = make_config([backend(up), {"name": "down", "url": "http://127.0.0.1:9",
                                        "models": ["hidden"]}],
                         routing={"aliases": {"fast": "llama3:8b", "gone": "hidden"}})
    gw = await gateway(config)
    async with http.get(gw.url + "/v1/models") as r:
        data = (await r.json())["data"]
    ids = {m["id"]: m for m in data}
    assert set(ids) == {"llama3:8b", "fast"}
    assert ids["fast"]["alias_of"] == "llama3:8b"


async def test_ollama_models_are_discovered_from_api_tags(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("ollama", models=["llama3:latest"])
    gw = await gateway(make_config([backend(mock, type="ollama")]))
    status, headers, _ = await post(http, gw.url, chat("llama3"))
    assert (status, headers["X-Nexus-Backend"]) == (200, "ollama")


async def test_health_summarises_backend_states(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    up = await mock_backend("up")
    config = make_config([backend(up), {"name": "down", "url": "http://127.0.0.1:9"}])
    gw = await gateway(config)
    async with http.get(gw.url + "/health") as r:
        summary = await r.json()
    assert r.status == 200
    assert summary["status"] == "ok"
    assert summary["backends"] == {"total": 2, "healthy": 1, "unhealthy": 1, "unknown": 0,
                                   "loading": 0}


async def test_metrics_and_stats_report_traffic(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)]))
    await post(http, gw.url, chat())
    async with http.get(gw.url + "/metrics") as r:
        text = await r.text()
    assert 'nexus_responses_total{backend="gpu",status="200"} 1' in text
    assert 'nexus_backend_state{backend="gpu",state="healthy"} 1' in text
    async with http.get(gw.url + "/v1/stats") as r:
        stats = await r.json()
    assert stats["backends"][0]["responses"] == {"200": 1}


async def test_client_leaving_mid_stream_is_not_held_against_the_backend(
        mock_backend: MockFactory, gateway: GatewayFactory) -> None:
    mock = await mock_backend("gpu", chunks=3)
    mock.hold = True
    gw = await gateway(make_config([backend(mock)], health_check={"failure_threshold": 1}))
    async with aiohttp.ClientSession() as client, \
            client.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as r:
        await asyncio.wait_for(r.content.readuntil(b"\n\n"), 10)
        r.close()  # the client walks away after the first chunk
    mock.release.set()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while gw.gateway.stats.responses["gpu", 200] == 0:
        assert loop.time() < deadline, "the gateway never finished the abandoned stream"
        await asyncio.sleep(0.01)
    state = gw.gateway.registry.get("gpu")
    assert state is not None
    assert state.health.state.value == "healthy"
    assert not gw.gateway.stats.failures
