"""The engine habits the mock backend learns: slots and a waiting queue, a prefix cache
that makes a repeated prompt's leading tokens cheap (and says how many in
`usage.prompt_tokens_details.cached_tokens`), and the load each engine publishes in its
own format: vLLM's and SGLang's Prometheus gauges, llama-server's `/metrics` (with
`--metrics`) and `/props` `total_slots`, and Ollama's `/api/ps`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

CHARS_PER_TOKEN = 4


class MockEngine:
    def __init__(self) -> None:
        self.running = 0
        self.waiting = 0
        self.external = 0          # requests "from elsewhere": they fill slots too
        self.kv_usage = 0.0
        self.prefix_queries = 0    # tokens asked of the prefix cache, and found in it
        self.prefix_hits = 0
        self._slots: asyncio.Semaphore | None = None
        self._slot_count: int | None = None
        self._prompts: list[str] = []

    def configure(self, slots: int | None) -> None:
        if slots != self._slot_count:
            self._slot_count = slots
            self._slots = None if slots is None else asyncio.Semaphore(slots)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one of the engine's slots while a request runs; wait in its queue first."""
        if self._slots is None:
            self.running += 1
            try:
                yield
            finally:
                self.running -= 1
            return
        self.waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            yield
        finally:
            self.running -= 1
            self._slots.release()

    def cached_tokens(self, prompt: str) -> int:
        """The tokens of `prompt` the prefix cache already holds (its longest shared
        prefix with any earlier prompt); the prompt joins the cache."""
        best = max((_shared(prompt, seen) for seen in self._prompts), default=0)
        self._prompts.append(prompt)
        tokens = len(prompt) // CHARS_PER_TOKEN
        cached = min(tokens, best // CHARS_PER_TOKEN)
        self.prefix_queries += tokens
        self.prefix_hits += cached
        return cached

    @property
    def busy(self) -> int:
        return self.running + self.external

    def metrics(self, flavor: str, model: str) -> str:
        label = f'{{model_name="{model}"}}'
        if flavor == "vllm":
            return (f"# TYPE vllm:num_requests_running gauge\n"
                    f"vllm:num_requests_running{label} {self.busy}\n"
                    f"# TYPE vllm:num_requests_waiting gauge\n"
                    f"vllm:num_requests_waiting{label} {self.waiting}\n"
                    f"# TYPE vllm:kv_cache_usage_perc gauge\n"
                    f"vllm:kv_cache_usage_perc{label} {self.kv_usage}\n"
                    f"# TYPE vllm:prefix_cache_queries counter\n"
                    f"vllm:prefix_cache_queries_total{label} {self.prefix_queries}\n"
                    f"# TYPE vllm:prefix_cache_hits counter\n"
                    f"vllm:prefix_cache_hits_total{label} {self.prefix_hits}\n")
        if flavor == "sglang":
            return (f"# TYPE sglang:num_running_reqs gauge\n"
                    f"sglang:num_running_reqs{label} {self.busy}\n"
                    f"# TYPE sglang:num_queue_reqs gauge\n"
                    f"sglang:num_queue_reqs{label} {self.waiting}\n"
                    f"# TYPE sglang:token_usage gauge\n"
                    f"sglang:token_usage{label} {self.kv_usage}\n")
        return (f"# HELP llamacpp:requests_processing Number of requests processing.\n"
                f"# TYPE llamacpp:requests_processing gauge\n"
                f"llamacpp:requests_processing {self.busy}\n"
                f"# HELP llamacpp:requests_deferred Number of requests deferred.\n"
                f"# TYPE llamacpp:requests_deferred gauge\n"
                f"llamacpp:requests_deferred {self.waiting}\n")


def _shared(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i
