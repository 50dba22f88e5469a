"""Context windows (and Ollama's capabilities) discovered where each server reports them;
an explicit config wins; /v1/models, /v1/stats and routing use them."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from tests.support.helpers import GatewayFactory, MockFactory, backend, chat, make_config, post

LONG = {"model": "m", "messages": [{"role": "user", "content": "word " * 2000}]}  # ~2,500


@pytest.mark.parametrize(("flavor", "kind", "source"), [
    ("llama-server", "llamacpp", "llama.cpp /v1/models meta.n_ctx"),
    ("llama-server-props", "llamacpp", "llama.cpp /props"),
    ("vllm", "vllm", "vLLM /v1/models max_model_len"),
    ("lmstudio", "lmstudio", "LM Studio max_context_length"),
    ("ollama", "ollama", "Ollama /api/show"),
])
async def test_each_server_kind_reports_its_window(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession,
        flavor: str, kind: str, source: str) -> None:
    mock = await mock_backend("gpu", models=["m"], flavor=flavor, context_window=1024)
    gw = await gateway(make_config([backend(mock, type=kind)]))
    async with http.get(gw.url + "/v1/models") as r:
        (model,) = [m for m in (await r.json())["data"] if m["id"] == "m"]
    assert model["context_window"] == {"tokens": 1024, "source": source}
    async with http.get(gw.url + "/v1/stats") as r:
        (stats,) = (await r.json())["backends"]
    assert stats["context_windows"]["m"] == {"tokens": 1024, "source": source}
    status, _, answer = await post(http, gw.url, LONG)  # can never fit: refused up front
    assert status == 400
    assert answer["error"]["code"] == "context_length_exceeded"  # type: ignore[index]
    assert mock.chat_requests() == []


async def test_a_configured_window_wins_over_the_reported_one(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    mock = await mock_backend("gpu", models=["m"], flavor="vllm", context_window=1024)
    gw = await gateway(make_config([backend(mock, type="vllm",
                                            capabilities={"context_window": 8192})]))
    async with http.get(gw.url + "/v1/models") as r:
        (model,) = (await r.json())["data"]
    assert model["context_window"] == {"tokens": 8192, "source": "config"}
    await post(http, gw.url, LONG)
    assert len(mock.chat_requests()) == 1  # routed by the configured window (the mock refuses)


async def test_a_long_request_goes_to_the_backend_whose_window_holds_it(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    small = await mock_backend("small", models=["m"], flavor="llama-server", context_window=512)
    large = await mock_backend("large", models=["m"], flavor="vllm", context_window=32768)
    gw = await gateway(make_config([backend(small, type="llamacpp", priority=100),
                                    backend(large, type="vllm", priority=1)]))
    status, headers, _ = await post(http, gw.url, LONG)
    assert (status, headers["X-Nexus-Backend"]) == (200, "large")
    explained = await (await http.post(gw.url + "/v1/routing/explain", json=LONG)).json()
    (analyzer,) = [s for s in explained["stages"] if s["stage"] == "RequestAnalyzer"]
    assert "512 tokens (llama.cpp /v1/models meta.n_ctx)" in analyzer["rejected"][0]["reason"]


async def test_ollama_capabilities_keep_images_off_a_model_without_vision(
        mock_backend: MockFactory, gateway: GatewayFactory, http: aiohttp.ClientSession) -> None:
    text_only = await mock_backend("text", models=["m"], flavor="ollama",
                                   capabilities=["completion", "tools"])
    seeing = await mock_backend("seeing", models=["m"], flavor="ollama",
                                capabilities=["completion", "vision"])
    gw = await gateway(make_config([backend(text_only, type="ollama", priority=100),
                                    backend(seeing, type="ollama", priority=1)]))
    image: dict[str, Any] = chat("m", messages=[{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}])
    status, headers, _ = await post(http, gw.url, image)
    assert (status, headers["X-Nexus-Backend"]) == (200, "seeing")
    status, headers, _ = await post(http, gw.url, chat("m"))
    assert (status, headers["X-Nexus-Backend"]) == (200, "text")
