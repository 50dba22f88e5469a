"""Hostile input found by fuzzing: deep nesting, broken or unknown encodings, bombs,
repeated headers, non-ASCII digits. Each is a 4xx in the OpenAI shape, never a 500."""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from typing import Any

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from nexus.core.errors import BodyTooLarge
from nexus.http import body as body_module
from nexus.http.nesting import MAX_NESTING
from tests.support.helpers import (
    GatewayFactory,
    MockFactory,
    RunningGateway,
    backend,
    chat,
    make_config,
)

MAX_BODY = 64 * 1024


@pytest.fixture
async def gw(mock_backend: MockFactory, gateway: GatewayFactory) -> RunningGateway:
    inside = await mock_backend("inside", models=["mock-model"])
    outside = await mock_backend("outside", models=["mock-model"])
    return await gateway(make_config([backend(inside, zone="restricted", priority=1),
                                      backend(outside, priority=100)],
                                     server={"max_body_bytes": MAX_BODY}))


async def send(http: aiohttp.ClientSession, url: str, data: bytes,
               headers: list[tuple[str, str]] | None = None,
               path: str = "/v1/chat/completions") -> tuple[int, dict[str, str], Any]:
    async with http.post(url + path, data=data, headers=CIMultiDict(headers or []),
                         compress=None) as r:
        return r.status, dict(r.headers), await r.json(content_type=None)


def openai_error(answer: Any) -> dict[str, Any]:
    assert set(answer["error"]) >= {"message", "type", "code", "param"}, answer
    error: dict[str, Any] = answer["error"]
    return error


def nested(depth: int) -> Any:
    value: Any = "x"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


DEEP = '{"k": [' * 500 + '"x"' + "]}" * 500  # 1,000 levels: more than json.dumps can write
HI = '{"role": "user", "content": "hi"}'
DEEP_PLACES = {
    "content": f'{{"model": "mock-model", "messages": [{{"role": "user", "content": [{DEEP}]}}]}}',
    "tools": f'{{"model": "mock-model", "messages": [{HI}], "tools": [{DEEP}]}}',
    "response_format": f'{{"model": "mock-model", "messages": [{HI}], "response_format": {DEEP}}}',
    "unknown field": f'{{"model": "mock-model", "messages": [{HI}], "extra": {DEEP}}}',
}


@pytest.mark.parametrize("place", sorted(DEEP_PLACES))
async def test_json_nested_a_thousand_levels_deep_is_a_400(
        gw: RunningGateway, http: aiohttp.ClientSession, place: str) -> None:
    status, _, answer = await send(http, gw.url, DEEP_PLACES[place].encode())
    assert status == 400
    assert "levels deep" in openai_error(answer)["message"]


async def test_deep_embeddings_input_is_a_400(
        gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    body = f'{{"model": "mock-model", "input": {DEEP}}}'.encode()
    status, _, answer = await send(http, gw.url, body, path="/v1/embeddings")
    assert status == 400
    openai_error(answer)


async def test_nesting_up_to_the_limit_is_served(
        gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    body = json.dumps(chat(extra=nested(MAX_NESTING - 2))).encode()
    status, _, _ = await send(http, gw.url, body)
    assert status == 200


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_compressed_body_is_read(
        gw: RunningGateway, http: aiohttp.ClientSession, encoding: str) -> None:
    raw = json.dumps(chat()).encode()
    data = gzip.compress(raw) if encoding == "gzip" else zlib.compress(raw)
    status, _, _ = await send(http, gw.url, data, [("Content-Encoding", encoding)])
    assert status == 200


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decode_is_a_400(
        gw: RunningGateway, http: aiohttp.ClientSession, encoding: str) -> None:
    status, _, answer = await send(http, gw.url, b"certainly not compressed",
                                   [("Content-Encoding", encoding)])
    assert status == 400
    assert f"does not decode as {encoding}" in openai_error(answer)["message"]


@pytest.mark.parametrize("encoding", ["br", "zstd", "compress"])
async def test_an_unsupported_encoding_is_a_415_in_the_openai_shape(
        gw: RunningGateway, http: aiohttp.ClientSession, encoding: str) -> None:
    status, _, answer = await send(http, gw.url, b"\x28\xb5\x2f\xfd whatever",
                                   [("Content-Encoding", encoding)])
    assert status == 415
    assert openai_error(answer)["code"] == "unsupported_content_encoding"


async def test_a_decompression_bomb_is_a_413_and_is_inflated_only_to_the_limit(
        gw: RunningGateway, http: aiohttp.ClientSession,
        monkeypatch: pytest.MonkeyPatch) -> None:
    bomb = zlib.compress(b"[" + b" " * (50 * 1024 * 1024), 9)  # 50 MB of blanks
    assert len(bomb) < MAX_BODY
    inflated: list[int] = []
    real = zlib.decompressobj

    class Counting:
        def __init__(self, wbits: int) -> None:
            self.inner = real(wbits)

        def decompress(self, data: bytes, max_length: int) -> bytes:
            out = self.inner.decompress(data, max_length)
            inflated.append(len(out))
            return out

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

    monkeypatch.setattr(body_module.zlib, "decompressobj", Counting)
    status, _, answer = await send(http, gw.url, bomb, [("Content-Encoding", "deflate")])
    assert status == 413
    openai_error(answer)
    assert sum(inflated) <= MAX_BODY + body_module.PIECE  # stopped at the limit


async def test_inflating_yields_to_the_event_loop_between_pieces() -> None:
    data = zlib.compress(b" " * (8 * body_module.PIECE))
    turns = 0
    done = asyncio.Event()

    async def other_request() -> None:  # stands for /health on the same replica
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    other = asyncio.create_task(other_request())
    await asyncio.sleep(0)
    inflated = await body_module._inflate(data, zlib.MAX_WBITS, 10 * body_module.PIECE)
    done.set()
    await other
    assert len(inflated) == 8 * body_module.PIECE
    assert turns >= 8  # it ran between every two pieces, not once at the end
    with pytest.raises(BodyTooLarge):
        await body_module._inflate(data, zlib.MAX_WBITS, body_module.PIECE)


async def test_restricted_anywhere_in_repeated_privacy_headers_wins(
        gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    for headers in ([("X-Nexus-Privacy", "unrestricted"), ("X-Nexus-Privacy", "restricted")],
                    [("X-Nexus-Privacy", "unrestricted, restricted")]):
        status, answer_headers, _ = await send(http, gw.url, json.dumps(chat()).encode(),
                                               headers)
        assert (status, answer_headers["X-Nexus-Backend"]) == (200, "inside")


async def test_strict_wins_over_flexible_and_over_a_repeated_false(
        gw: RunningGateway, http: aiohttp.ClientSession) -> None:
    from nexus.http.flags import request_flags

    flags = request_flags(CIMultiDict([("X-Nexus-Strict", "false"), ("X-Nexus-Strict", "true"),
                                       ("X-Nexus-Flexible", "true")]))  # type: ignore[arg-type]
    assert (flags.strict, flags.flexible) == (True, False)
    flags = request_flags(CIMultiDict([("X-Nexus-Flexible", "true"),
                                       ("X-Nexus-Flexible", "false")]))  # type: ignore[arg-type]
    assert not flags.flexible


@pytest.mark.parametrize("value", ["٥", "1_0", "0x10", "+", " ", "1e2"])
async def test_priority_takes_ascii_integers_only(
        gw: RunningGateway, http: aiohttp.ClientSession, value: str) -> None:
    status, _, answer = await send(http, gw.url, json.dumps(chat()).encode(),
                                   [("X-Nexus-Priority", value)])
    assert status == 400
    assert "X-Nexus-Priority" in openai_error(answer)["message"]


# -- the fuzzer's view: nesting, encodings and repeated headers together -----------------
PRIVACY_VALUES = st.sampled_from(["restricted", "unrestricted", "Restricted", " restricted "])
ENCODINGS = st.sampled_from(["", "identity", "gzip", "deflate", "br", "zstd", "GZIP"])


def encode(raw: bytes, encoding: str, corrupt: bool) -> bytes:
    if corrupt:
        return raw[: len(raw) // 2] + b"\x00garbage"
    if encoding.lower() == "gzip":
        return gzip.compress(raw)
    if encoding == "deflate":
        return zlib.compress(raw)
    return raw


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(depth=st.integers(0, 400), encoding=ENCODINGS, corrupt=st.booleans(),
       privacy=st.lists(PRIVACY_VALUES, max_size=4),
       priorities=st.lists(st.sampled_from(["1", "-3", "٣", "1_0", "200"]), max_size=3))
async def test_fuzzed_nesting_encodings_and_repeated_headers_never_500_or_leak(
        gw: RunningGateway, http: aiohttp.ClientSession, depth: int, encoding: str,
        corrupt: bool, privacy: list[str], priorities: list[str]) -> None:
    raw = json.dumps(chat(extra=nested(depth))).encode()
    headers = [("X-Nexus-Privacy", p) for p in privacy] + \
        [("X-Nexus-Priority", p) for p in priorities]
    if encoding:
        headers.append(("Content-Encoding", encoding))
    status, answer_headers, answer = await send(http, gw.url, encode(raw, encoding, corrupt),
                                                headers)
    assert status < 500, answer
    if status >= 400:
        openai_error(answer)
    elif any(p.strip().lower() == "restricted" for p in privacy):
        assert answer_headers["X-Nexus-Backend"] == "inside"
