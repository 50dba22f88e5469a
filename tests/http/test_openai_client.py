"""The official `openai` client works against the gateway unmodified."""

from __future__ import annotations

import openai
import pytest

from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config


@pytest.fixture
async def client(mock_backend: MockFactory, gateway: GatewayFactory) -> openai.AsyncOpenAI:
    mock = await mock_backend("gpu", models=["llama3:8b", "nomic-embed"], reply="hi there")
    gw = await gateway(make_config([backend(mock), {"name": "down", "url": "http://127.0.0.1:9",
                                                    "models": ["offline-model"]}]))
    return openai.AsyncOpenAI(base_url=gw.url + "/v1", api_key="unused", max_retries=0)


async def test_chat(client: openai.AsyncOpenAI) -> None:
    async with client:
        completion = await client.chat.completions.create(
            model="llama3:8b", messages=[{"role": "user", "content": "hello"}])
    assert completion.choices[0].message.content == "hi there "
    assert completion.usage is not None


async def test_chat_streaming(client: openai.AsyncOpenAI) -> None:
    async with client:
        stream = await client.chat.completions.create(
            model="llama3:8b", messages=[{"role": "user", "content": "hello"}], stream=True)
        parts = [chunk.choices[0].delta.content or "" async for chunk in stream
                 if chunk.choices]
    assert "".join(parts) == "hi there "


async def test_models_and_embeddings(client: openai.AsyncOpenAI) -> None:
    async with client:
        models = [m.id async for m in client.models.list()]
        embedding = await client.embeddings.create(model="nomic-embed", input="text")
    assert {"llama3:8b", "nomic-embed"} <= set(models)
    assert "offline-model" not in models
    assert embedding.data[0].embedding == [0.1, 0.2, 0.3]


async def test_unknown_model_raises_not_found(client: openai.AsyncOpenAI) -> None:
    async with client:
        with pytest.raises(openai.NotFoundError) as info:
            await client.chat.completions.create(
                model="nope", messages=[{"role": "user", "content": "x"}])
    assert info.value.code == "model_not_found"


async def test_no_viable_backend_raises_a_503_status_error(client: openai.AsyncOpenAI) -> None:
    async with client:
        with pytest.raises(openai.APIStatusError) as info:
            await client.chat.completions.create(
                model="offline-model", messages=[{"role": "user", "content": "x"}])
    assert info.value.status_code == 503
