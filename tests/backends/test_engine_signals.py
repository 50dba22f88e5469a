"""Engine signals: each engine's own format parsed, their age, and the scraper against
the mock's engines (vLLM gauges, llama-server's /metrics and /props, Ollama's /api/ps)."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import msgspec
import pytest

from nexus.backends.backend import Backend
from nexus.backends.engine import (
    LLAMACPP,
    SGLANG,
    VLLM,
    EngineSignals,
    parse_ollama_ps,
    parse_prometheus,
    parse_props_slots,
)
from nexus.backends.recorder import OutcomeRecorder
from nexus.backends.registry import Registry
from nexus.backends.scraper import EngineScraper, engine_of
from nexus.config.schema import BackendConfig, HealthCheckConfig
from tests.support.helpers import MockFactory, backend, chat, make_config, until

MODEL = 'model_name="meta-llama/Llama-3.1-8B-Instruct",engine="0"'
VLLM_TEXT = f"""# HELP vllm:num_requests_running Number of requests in model execution batches.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{{MODEL}}} 2.0
# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{{MODEL}}} 3.0
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{{{MODEL}}} 0.42
# HELP vllm:prefix_cache_queries_total Prefix cache queries, in queried tokens.
# TYPE vllm:prefix_cache_queries_total counter
vllm:prefix_cache_queries_total{{{MODEL}}} 1000.0
# HELP vllm:prefix_cache_hits_total Prefix cache hits, in cached tokens.
# TYPE vllm:prefix_cache_hits_total counter
vllm:prefix_cache_hits_total{{{MODEL}}} 830.0
# HELP vllm:time_to_first_token_seconds Histogram of time to first token in seconds.
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{{{MODEL},le="0.001"}} 0.0
vllm:time_to_first_token_seconds_count{{{MODEL}}} 12.0
vllm:time_to_first_token_seconds_sum{{{MODEL}}} 3.1
"""
OLD_VLLM_TEXT = f"""# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{{{MODEL}}} 1.0
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{{{MODEL}}} 0.0
# TYPE vllm:gpu_cache_usage_perc gauge
vllm:gpu_cache_usage_perc{{{MODEL}}} 0.9
# TYPE vllm:gpu_prefix_cache_queries counter
vllm:gpu_prefix_cache_queries_total{{{MODEL}}} 10.0
vllm:gpu_prefix_cache_queries_created{{{MODEL}}} 1.7e9
# TYPE vllm:gpu_prefix_cache_hits counter
vllm:gpu_prefix_cache_hits_total{{{MODEL}}} 5.0
"""
SGLANG_TEXT = """# HELP sglang:num_running_reqs The number of running requests.
# TYPE sglang:num_running_reqs gauge
sglang:num_running_reqs{model_name="qwen"} 7.0
# HELP sglang:num_queue_reqs The number of requests in the waiting queue.
# TYPE sglang:num_queue_reqs gauge
sglang:num_queue_reqs{model_name="qwen"} 4.0
# HELP sglang:token_usage The token usage.
# TYPE sglang:token_usage gauge
sglang:token_usage{model_name="qwen"} 0.31
"""
LLAMACPP_TEXT = """# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed.
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 1234
# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# HELP llamacpp:requests_deferred Number of requests deferred.
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
"""
OLLAMA_PS = b"""{"models":[{"name":"mistral:latest","model":"mistral:latest","size":5137025024,
"digest":"2ae6f6dd7a3dd734790bbbf58b8909a606e0e7e97e94b7604e0aa7ae4490e6d8",
"details":{"format":"gguf","family":"llama","parameter_size":"7.2B"},
"expires_at":"2024-06-04T14:38:31.83753-07:00","size_vram":5137025024}]}"""


def test_vllm_gauges_and_prefix_cache_counters() -> None:
    signals = parse_prometheus(VLLM_TEXT, VLLM, max_age=3)
    assert (signals.running, signals.waiting, signals.kv_usage) == (2, 3, 0.42)
    assert signals.prefix_hit_rate == pytest.approx(0.83)


def test_older_vllm_names_are_read_too() -> None:
    signals = parse_prometheus(OLD_VLLM_TEXT, VLLM, max_age=3)
    assert (signals.running, signals.kv_usage, signals.prefix_hit_rate) == (1, 0.9, 0.5)


def test_sglang_and_llamacpp_gauges() -> None:
    sglang = parse_prometheus(SGLANG_TEXT, SGLANG, max_age=3)
    assert (sglang.running, sglang.waiting, sglang.kv_usage) == (7, 4, 0.31)
    llama = parse_prometheus(LLAMACPP_TEXT, LLAMACPP, max_age=3, slots=2)
    assert (llama.running, llama.waiting, llama.slots, llama.kv_usage) == (2, 1, 2, None)


def test_llama_server_props_and_ollama_ps() -> None:
    assert parse_props_slots(b'{"total_slots": 4, "default_generation_settings": {}}') == 4
    assert parse_props_slots(b"not json") is None
    ps = parse_ollama_ps(OLLAMA_PS, in_flight=1, max_age=3)
    assert ps.loaded == frozenset({"mistral:latest"})
    assert ps.running == 1


def test_a_reading_goes_stale_and_is_then_ignored() -> None:
    from nexus.routing.affinity import busy
    from nexus.routing.scoring import capacity
    gpu = Backend(BackendConfig(name="gpu", url="http://127.0.0.1:1", max_concurrent=8),
                  HealthCheckConfig())
    gpu.state.engine = EngineSignals(running=6, waiting=4, slots=4, read_at=time.monotonic(),
                                     max_age=3)
    assert busy(gpu) == 10
    assert capacity(gpu, time.monotonic()) == (10, 4)
    gpu.state.engine = msgspec.structs.replace(gpu.state.engine,
                                               read_at=time.monotonic() - 10)
    assert not gpu.state.engine.fresh()
    assert busy(gpu) == 0  # neutral: as if never read
    assert capacity(gpu, time.monotonic()) == (0, 8)


def test_which_engine_each_type_is_read_for() -> None:
    def of(**fields: str) -> str | None:
        return engine_of(Backend(BackendConfig(name="b", url="http://127.0.0.1:1", **fields),
                                 HealthCheckConfig()))
    assert of(type="vllm") == "vllm"
    assert of(type="llamacpp") == "llamacpp"
    assert of(type="ollama") == "ollama"
    assert of(type="generic") is None
    assert of(type="generic", engine="sglang") == "sglang"
    assert of(type="vllm", engine="off") is None


@pytest.mark.parametrize(("kind", "flavor"), [("vllm", "vllm"), ("llamacpp", "llama-server"),
                                             ("generic", "sglang")])
async def test_the_scraper_reads_a_busy_engines_queue(
        kind: str, flavor: str, mock_backend: MockFactory) -> None:
    mock = await mock_backend("gpu", flavor=flavor, slots=2)
    mock.hold = True  # each stream waits after its first chunk: slots stay taken
    config = make_config([backend(mock, type=kind, engine="sglang" if flavor == "sglang"
                                  else "auto")])
    registry = Registry.from_config(config, {})
    gpu = registry.get("gpu")
    assert gpu is not None
    async with aiohttp.ClientSession() as session:
        streams = [asyncio.create_task(_stream(session, mock.url)) for _ in range(3)]
        await until(lambda: (mock.engine.running, mock.engine.waiting) == (2, 1))
        scraper = EngineScraper(registry, session, OutcomeRecorder())
        await scraper.scrape_due()
        mock.release.set()
        await asyncio.gather(*streams)
    assert gpu.state.engine is not None
    assert (gpu.state.engine.running, gpu.state.engine.waiting) == (2, 1)
    if flavor == "llama-server":
        assert gpu.state.engine.slots == 2


async def test_the_scraper_reads_what_ollama_has_loaded(mock_backend: MockFactory) -> None:
    mock = await mock_backend("ollama", flavor="ollama", models=["llama3:8b", "qwen2:7b"],
                              loaded=["llama3:8b"])
    registry = Registry.from_config(make_config([backend(mock, type="ollama")]), {})
    async with aiohttp.ClientSession() as session:
        await EngineScraper(registry, session, OutcomeRecorder()).scrape_due()
    engine = registry.get("ollama").state.engine  # type: ignore[union-attr]
    assert engine is not None
    assert engine.loaded == frozenset({"llama3:8b"})


async def _stream(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url + "/v1/chat/completions", json=chat(stream=True)) as r:
        await r.read()
