"""A client cannot take a backend away from the others by what it sends; upstream errors
reach the client as the backend said them; a request that never fits is a 400."""

from __future__ import annotations

import aiohttp

from tests.support.helpers import GatewayFactory, MockFactory, backend, chat, make_config, post

LONG = "word " * 400  # about 500 tokens


async def test_wrong_typed_parameters_from_one_client_leave_the_backend_to_the_others(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    llama = await mock_backend("llama", strict_types=True, omit_usage=True)
    gw = await gateway(make_config([backend(llama)], quality={"min_requests": 1},
                                   health_check={"failure_threshold": 1}))
    for _ in range(10):
        status, _, answer = await post(http, gw.url, chat(temperature="hot"))
        assert status == 502
        error = answer["error"]
        assert error["type"] == "internal_server_error"  # type: ignore[index]
        assert error["upstream_status"] == 500  # type: ignore[index]
        assert "float_parsing" in error["message"]  # type: ignore[index]
    state = gw.gateway.registry.get("llama")
    assert state is not None
    assert state.health.state.value == "healthy"
    assert state.metrics.errors == 0  # the same failure everywhere: the request's fault
    status, _, _ = await post(http, gw.url, chat(temperature=0.2))
    assert status == 200


async def test_an_error_only_one_backend_makes_counts_against_it(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    flaky = await mock_backend("flaky", status=500)
    steady = await mock_backend("steady")
    gw = await gateway(make_config([backend(flaky, priority=100), backend(steady, priority=1)]))
    status, headers, _ = await post(http, gw.url, chat())
    assert (status, headers["X-Nexus-Backend"]) == (200, "steady")
    state = gw.gateway.registry.get("flaky")
    assert state is not None
    assert state.metrics.errors == 1
    assert state.health.state.value == "healthy"  # an answer is not proof it is down


async def test_the_same_5xx_from_every_candidate_counts_against_none(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mocks = [await mock_backend(name, strict_types=True) for name in ("a", "b")]
    gw = await gateway(make_config([backend(m) for m in mocks]))
    status, _, _ = await post(http, gw.url, chat(temperature="lots"))
    assert status == 502
    assert sum(len(m.chat_requests()) for m in mocks) == 2  # both were tried
    assert all(gw.gateway.registry.get(m.name).metrics.errors == 0  # type: ignore[union-attr]
               for m in mocks)


async def test_an_upstream_context_error_keeps_its_status_code_and_param(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    small = await mock_backend("small", context_window=100)
    gw = await gateway(make_config([backend(small)]))
    status, _, answer = await post(
        http, gw.url, {"model": "mock-model", "messages": [{"role": "user", "content": LONG}]})
    assert status == 400
    assert answer["error"] == {  # type: ignore[comparison-overlap]
        "message": answer["error"]["message"],  # type: ignore[index]
        "type": "invalid_request_error", "code": "context_length_exceeded",
        "param": "messages"}
    assert gw.gateway.registry.get("small").health.state.value == "healthy"  # type: ignore[union-attr]


async def test_an_empty_stream_for_a_long_prompt_is_not_held_against_the_backend(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    small = await mock_backend("small", context_window=100)
    roomy = await mock_backend("roomy")
    gw = await gateway(make_config([backend(small, priority=100), backend(roomy, priority=1)],
                                   health_check={"failure_threshold": 1}))
    body = {"model": "mock-model", "stream": True,
            "messages": [{"role": "user", "content": LONG}]}
    async with http.post(gw.url + "/v1/chat/completions", json=body) as r:
        assert (r.status, r.headers["X-Nexus-Backend"]) == (200, "roomy")
        await r.read()
    state = gw.gateway.registry.get("small")
    assert state is not None
    assert state.health.state.value == "healthy"
    assert state.metrics.errors == 1  # another backend answered: it counts in the rate


async def test_a_request_no_candidate_can_ever_fit_is_a_400_not_a_503(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("small")
    gw = await gateway(make_config([backend(mock, capabilities={"context_window": 1000})]))
    status, headers, answer = await post(http, gw.url, chat(max_tokens=5000))
    assert status == 400
    assert "Retry-After" not in headers
    assert answer["error"]["code"] == "context_length_exceeded"  # type: ignore[index]
    assert answer["error"]["param"] == "messages"  # type: ignore[index]
    assert mock.chat_requests() == []


async def test_a_503_while_the_only_backend_waits_for_its_recovery_checks_has_retry_after(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    gone = {"name": "gone", "url": "http://127.0.0.1:9", "models": ["mock-model"]}
    gw = await gateway(make_config([gone], health_check={"enabled": False,
                                                         "interval_seconds": 5}))
    status, headers, _ = await post(http, gw.url, chat())  # refused: marked down at once
    assert status == 502
    status, headers, answer = await post(http, gw.url, chat())
    assert status == 503
    assert headers["Retry-After"] == "10"  # two recovery checks, 5 s apart
    assert answer["error"]["rejection_reasons"][0]["stage"] == "SchedulerReconciler"  # type: ignore[index]


async def test_an_upstream_429_passes_on_its_retry_after(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    busy = await mock_backend("busy", status=429, retry_after="7")
    gw = await gateway(make_config([backend(busy)]))
    status, headers, answer = await post(http, gw.url, chat())
    assert status == 429
    assert headers["Retry-After"] == "7"
    assert answer["error"]["type"] == "server_error"  # type: ignore[index]
    assert gw.gateway.registry.get("busy").health.state.value == "healthy"  # type: ignore[union-attr]


async def test_streams_without_usage_count_estimated_tokens_in_stats_and_metrics(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    llama = await mock_backend("llama", omit_usage=True, chunks=3)  # llama-cpp-python streams
    gw = await gateway(make_config([backend(llama)]))
    async with http.post(gw.url + "/v1/chat/completions", json=chat(stream=True)) as r:
        await r.read()
    async with http.get(gw.url + "/v1/stats") as r:
        (stats,) = (await r.json())["backends"]
    assert stats["completion_tokens"] == stats["estimated_completion_tokens"] == 3
    assert stats["prompt_tokens"] == stats["estimated_prompt_tokens"] > 0
    async with http.get(gw.url + "/metrics") as r:
        text = await r.text()
    assert 'nexus_tokens_estimated_total{backend="llama",kind="completion"} 3' in text


async def test_a_paid_stream_broken_after_the_first_byte_bills_every_relayed_token(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    paid = await mock_backend("paid", models=["gpt-4o"], omit_usage=True, chunks=5,
                              reply="a b c d e", drop_after_chunks=3)
    gw = await gateway(make_config([backend(paid, type="openai", api_key_env="KEY")]),
                       {"KEY": "sk-test"})
    async with http.post(gw.url + "/v1/chat/completions",
                         json=chat("gpt-4o", stream=True)) as r:
        text = (await r.read()).decode()
    assert "backend_stream_interrupted" in text
    store = gw.gateway.store
    spent = (await store.breakdown(store.budget_view().month)).total_micro_usd
    # gpt-4o at $2.50 / $10 per million: 4 estimated tokens in, the 3 relayed out
    assert spent == -(-(4 * 2500 + 3 * 10_000) // 1000)
