"""What an inference engine says about its own load, read off the request path.

vLLM and SGLang publish Prometheus gauges at /metrics, llama-server too when started
with `--metrics` (and its slots at /props), and Ollama lists what it has loaded at
/api/ps. Each reading carries its age: past `max_age` it is stale and routing treats
the backend as if it had never been read (neutral), so a scrape that stops is never
trusted forever. The Prometheus text is parsed by prometheus-client's own parser.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import msgspec
from prometheus_client.parser import text_string_to_metric_families

# Metric names by engine: (running, waiting, KV-cache use, prefix-cache queries, hits).
VLLM = ("vllm:num_requests_running", "vllm:num_requests_waiting",
        ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"),
        ("vllm:prefix_cache_queries", "vllm:gpu_prefix_cache_queries"),
        ("vllm:prefix_cache_hits", "vllm:gpu_prefix_cache_hits"))
SGLANG = ("sglang:num_running_reqs", "sglang:num_queue_reqs", ("sglang:token_usage",),
          (), ())
LLAMACPP = ("llamacpp:requests_processing", "llamacpp:requests_deferred",
            ("llamacpp:kv_cache_usage_ratio",), (), ())


class EngineSignals(msgspec.Struct, kw_only=True):
    running: int = 0
    waiting: int = 0
    slots: int | None = None             # llama-server's total_slots; None: not said
    kv_usage: float | None = None        # 0..1 of the KV cache in use
    prefix_queries: float | None = None  # cumulative token counts of the prefix cache
    prefix_hits: float | None = None
    loaded: frozenset[str] | None = None  # models in memory (/api/ps, llama-server /models)
    vram_bytes: dict[str, int] | None = None  # GPU memory each loaded model holds (/api/ps)
    ours: int = 0                        # the fleet's requests in flight there when read
    read_at: float = 0.0                 # time.monotonic() of the reading
    max_age: float = 5.0                 # older than this: stale, ignored

    def fresh(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) - self.read_at <= self.max_age

    @property
    def outside(self) -> int:
        """Requests there that are not the fleet's (traffic from elsewhere), as read.
        The fleet's own count is fresher than any reading: routing adds it itself."""
        return max(0, self.running + self.waiting - self.ours)

    @property
    def capacity(self) -> int | None:
        """How many requests the engine runs at once: said (llama-server's slots), or
        seen (a queue means every slot was taken), else unknown."""
        if self.slots:
            return self.slots
        return self.running if self.waiting > 0 and self.running > 0 else None

    @property
    def prefix_hit_rate(self) -> float | None:
        if not self.prefix_queries or self.prefix_hits is None:
            return None
        return self.prefix_hits / self.prefix_queries


def engine_view(signals: EngineSignals | None, now: float | None = None) -> dict[str, Any] | None:
    """What /v1/stats and `nexus backends` show of a reading, with its age."""
    if signals is None:
        return None
    now = time.monotonic() if now is None else now
    return {"running": signals.running, "waiting": signals.waiting, "slots": signals.capacity,
            "kv_usage": signals.kv_usage, "prefix_cache_hit_rate": signals.prefix_hit_rate,
            "loaded": None if signals.loaded is None else sorted(signals.loaded),
            "outside": signals.outside, "age_seconds": round(max(0.0, now - signals.read_at), 3),
            "fresh": signals.fresh(now)}


def _samples(text: str) -> dict[str, float]:
    """Each metric's value, summed over its label sets (one per model or engine)."""
    values: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith(("_created", "_bucket", "_count", "_sum")) and \
                    sample.name != family.name:
                continue
            name = sample.name.removesuffix("_total")
            values[name] = values.get(name, 0.0) + sample.value
    return values


def _first(values: dict[str, float], names: Iterable[str]) -> float | None:
    return next((values[n] for n in names if n in values), None)


def parse_prometheus(text: str, names: tuple[Any, ...], max_age: float,
                     slots: int | None = None) -> EngineSignals:
    """An engine's /metrics as signals (`names`: VLLM, SGLANG or LLAMACPP)."""
    running, waiting, kv, queries, hits = names
    values = _samples(text)
    usage = _first(values, kv)
    return EngineSignals(running=int(values.get(running, 0)), waiting=int(values.get(waiting, 0)),
                         slots=slots, kv_usage=None if usage is None else min(1.0, usage),
                         prefix_queries=_first(values, queries), prefix_hits=_first(values, hits),
                         read_at=time.monotonic(), max_age=max_age)


def parse_props_slots(body: bytes) -> int | None:
    """llama-server's /props: how many requests it serves at once."""
    try:
        slots = msgspec.json.decode(body).get("total_slots")
    except (msgspec.DecodeError, AttributeError):
        return None
    return slots if isinstance(slots, int) and slots > 0 else None


class _Loaded(msgspec.Struct):
    name: str = ""
    model: str = ""
    size_vram: int = 0


class _Ps(msgspec.Struct):
    models: list[_Loaded] = msgspec.field(default_factory=list)


def parse_router_models(body: bytes) -> frozenset[str] | None:
    """llama-server in router mode: the models whose status is `loaded` (a sleeping,
    unloaded or loading one is present but cold); None if the listing says nothing."""
    try:
        listing = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    data = listing.get("data") if isinstance(listing, dict) else None
    if not isinstance(data, list):
        return None
    loaded = set()
    for entry in data:
        status = entry.get("status") if isinstance(entry, dict) else None
        value = status.get("value") if isinstance(status, dict) else status
        if value == "loaded" and isinstance(entry.get("id"), str):
            loaded.add(entry["id"])
    return frozenset(loaded)


def parse_ollama_ps(body: bytes, in_flight: int, max_age: float) -> EngineSignals:
    """Ollama's /api/ps: what is loaded. It has no queue gauge: what runs there is what
    the fleet has in flight."""
    loaded = msgspec.json.decode(body, type=_Ps).models
    return EngineSignals(running=in_flight,
                         loaded=frozenset(m.name or m.model for m in loaded),
                         vram_bytes={m.name or m.model: max(0, m.size_vram) for m in loaded},
                         read_at=time.monotonic(), max_age=max_age)
