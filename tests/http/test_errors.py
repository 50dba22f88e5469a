"""Bad input gets a 4xx in the OpenAI error shape, never a 500 or a traceback."""

from __future__ import annotations

import json

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
)

ERROR_FIELDS = {"message", "type", "code", "param"}


@pytest.fixture
async def gw(mock_backend: MockFactory, gateway: GatewayFactory) -> RunningGateway:
    mock = await mock_backend("gpu", models=["mock-model"])
    return await gateway(make_config([backend(mock)], server={"max_body_bytes": 4096}))


async def call(http: aiohttp.ClientSession, url: str, data: bytes | str,
               path: str = "/v1/chat/completions",
               headers: dict[str, str] | None = None) -> tuple[int, dict[str, object]]:
    async with http.post(url + path, data=data, headers=headers or {}) as r:
        body = await r.json(content_type=None)
        return r.status, body


def assert_openai_error(body: dict[str, object]) -> dict[str, object]:
    error = body["error"]
    assert isinstance(error, dict)
    assert set(error) >= ERROR_FIELDS
    return error


@pytest.mark.parametrize(("payload", "param"), [
    ("{not json", None),
    ("[]", None),
    ("", None),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "model"),
    ('{"model": "mock-model"}', "messages"),
    ('{"model": "mock-model", "messages": []}', "messages"),
    ('{"model": 42, "messages": [{"role": "user"}]}', "model"),
    ('{"model": "mock-model", "messages": [{"content": "hi"}]}', "messages[0].role"),
    ('{"model": "mock-model", "messages": [{"role": "user"}], "stream": "yes"}', "stream"),
])
async def test_malformed_chat_bodies_are_400(http: aiohttp.ClientSession, gw: RunningGateway,
                                            payload: str, param: str | None) -> None:
    status, body = await call(http, gw.url, payload)
    assert status == 400
    error = assert_openai_error(body)
    assert error["param"] == param


async def test_missing_prompt_and_input_are_400(http: aiohttp.ClientSession,
                                               gw: RunningGateway) -> None:
    status, body = await call(http, gw.url, '{"model": "mock-model"}', "/v1/completions")
    assert (status, assert_openai_error(body)["param"]) == (400, "prompt")
    status, body = await call(http, gw.url, '{"model": "mock-model"}', "/v1/embeddings")
    assert (status, assert_openai_error(body)["param"]) == (400, "input")


async def test_unknown_model_is_404(http: aiohttp.ClientSession, gw: RunningGateway) -> None:
    status, body = await call(http, gw.url, json.dumps(chat("no-such-model")))
    assert status == 404
    assert assert_openai_error(body)["code"] == "model_not_found"


async def test_body_over_the_limit_is_413(http: aiohttp.ClientSession, gw: RunningGateway) -> None:
    big = json.dumps(chat(padding="x" * 10_000))
    status, body = await call(http, gw.url, big)
    assert status == 413
    assert_openai_error(body)


async def test_unknown_path_is_404_and_wrong_method_405(http: aiohttp.ClientSession,
                                                       gw: RunningGateway) -> None:
    status, body = await call(http, gw.url, "{}", "/v1/nothing")
    assert status == 404
    assert_openai_error(body)
    async with http.get(gw.url + "/v1/chat/completions") as r:
        assert r.status == 405
        assert r.headers["Allow"] == "POST"
        assert_openai_error(await r.json())
    async with http.head(gw.url + "/health") as r:  # every GET endpoint answers HEAD
        assert r.status == 200


async def test_an_unexpected_failure_is_a_500_in_the_openai_shape_with_the_request_id(
        http: aiohttp.ClientSession, gw: RunningGateway) -> None:
    async def broken(*_: object) -> None:
        raise RuntimeError("a bug")

    gw.gateway.forwarder.serve = broken  # type: ignore[method-assign,assignment]
    headers = {"X-Request-Id": "req-7"}
    async with http.post(gw.url + "/v1/chat/completions", json=chat(), headers=headers) as r:
        assert r.status == 500
        assert r.headers["X-Nexus-Request-Id"] == "req-7"
        error = assert_openai_error(await r.json())
    assert "req-7" in str(error["message"])
    assert "a bug" not in str(error["message"])  # no internals to the client


async def test_no_viable_backend_is_503(mock_backend: MockFactory, gateway: GatewayFactory,
                                        http: aiohttp.ClientSession) -> None:
    config = make_config([{"name": "down", "url": "http://127.0.0.1:9", "models": ["m"]}])
    gw = await gateway(config)
    status, body = await call(http, gw.url, json.dumps(chat("m")))
    assert status == 503
    assert "down (unhealthy" in str(assert_openai_error(body)["message"])


async def test_api_keys_are_required_when_configured(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu")
    gw = await gateway(make_config([backend(mock)], server={"api_keys_env": "KEYS"}),
                       environ={"KEYS": "k1, k2"})
    payload = json.dumps(chat())
    status, body = await call(http, gw.url, payload)
    assert (status, assert_openai_error(body)["type"]) == (401, "authentication_error")
    status, _ = await call(http, gw.url, payload, headers={"Authorization": "Bearer wrong"})
    assert status == 401
    status, _ = await call(http, gw.url, payload, headers={"Authorization": "Bearer k2"})
    assert status == 200
    async with http.get(gw.url + "/health") as r:  # liveness needs no key
        assert r.status == 200
    for path in ("/v1/nothing", "/v1/models"):  # /v1 asks for the key before anything else
        async with http.get(gw.url + path) as r:
            assert r.status == 401
    async with http.get(gw.url + "/v1/chat/completions",
                        headers={"Authorization": "Bearer k1"}) as r:
        assert r.status == 405


async def test_api_keys_env_that_is_unset_refuses_to_start(gateway: GatewayFactory) -> None:
    from nexus.config import ConfigError

    with pytest.raises(ConfigError, match="NEXUS_KEYS"):
        await gateway(make_config([{"name": "a", "url": "http://127.0.0.1:9"}],
                                  server={"api_keys_env": "NEXUS_KEYS"}), environ={})


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)
bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries({"model": json_values, "messages": json_values},
                          optional={"stream": json_values, "stream_options": json_values,
                                    "max_tokens": json_values})
    .map(lambda v: json.dumps(v).encode()),
)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=bodies, path=st.sampled_from(["/v1/chat/completions", "/v1/completions",
                                           "/v1/embeddings"]),
       request_id=header_values, privacy=header_values)
async def test_fuzzed_bodies_and_headers_never_get_a_500(
        http: aiohttp.ClientSession, gw: RunningGateway, body: bytes, path: str,
        request_id: str, privacy: str) -> None:
    headers = {"X-Request-Id": request_id, "X-Nexus-Privacy": privacy,
               "Content-Type": "application/json"}
    async with http.post(gw.url + path, data=body, headers=headers) as r:
        assert r.status < 500 or r.status in (502, 503, 504), await r.text()
        if r.status >= 400:
            assert_openai_error(await r.json(content_type=None))
