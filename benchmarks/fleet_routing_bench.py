"""Placement on a simulated GPU fleet: prefix-cache hit rate and time to first token
through Nexus (one replica, and two sharing Redis) beside random placement and an
oracle, in one run.

Each simulated server has `--slots` slots (more requests wait in its queue), a prefix
cache of the prompts it has served (LRU), and a prefill cost per uncached token, so a
conversation that changes server re-reads its whole history. It publishes its load
as vLLM does (/metrics). Three loads:

- conversations: `--conversations` chats of `--turns` turns with a long system prompt,
  several at once;
- unique prompts on an idle fleet, against a client that spreads them evenly itself;
- the same conversations with one of the servers saturated by traffic from elsewhere
  (its slots held, a queue of its own): how much of the load still goes to it.

The oracle pins each conversation to one server and spreads them evenly (it cannot
see the outside traffic). Goals: hit rate >= 85 % of the oracle's and TTFT p50 <= 1.3x
the oracle's (1 and 2 replicas); on the idle fleet TTFT p90 <= 1.5x the even spread;
<= 8 % of requests to the saturated server.

    python benchmarks/fleet_routing_bench.py [--conversations 32] [--turns 5]

Needs redis-server for the two-replica run (skipped without one).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from nexus.config.schema import Config  # noqa: E402
from nexus.config.validate import validate  # noqa: E402
from nexus.http.app import create_app  # noqa: E402
from nexus.http.connections import GatewayRunner  # noqa: E402
from nexus.http.context import EDGE  # noqa: E402
from tests.support.redis_server import RedisServer, redis_binary  # noqa: E402

CHARS_PER_TOKEN = 4
PREFILL_MS_PER_TOKEN = 0.05   # 2,000 uncached tokens: 100 ms
BASE_MS = 4.0
CHUNKS, CHUNK_MS = 8, 2.0
SYSTEM = "You are a careful assistant. " * 280  # about 2,000 tokens


class SimServer:
    """One GPU server: slots, a queue, a prefix cache, vLLM's gauges."""

    def __init__(self, name: str, slots: int, cache_entries: int = 256) -> None:
        self.name, self.slots = name, asyncio.Semaphore(slots)
        self.running = self.waiting = self.served = 0
        self.external_waiting = 0
        self.cache: collections.OrderedDict[str, None] = collections.OrderedDict()
        self.cache_entries = cache_entries
        self.prompt_tokens = self.cached_tokens = 0
        self.port = 0
        self.runner: web.AppRunner | None = None

    async def start(self) -> SimServer:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v1/models", self.models)
        app.router.add_get("/metrics", self.metrics)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def models(self, request: web.Request) -> web.Response:
        return web.json_response({"data": [{"id": "llm", "max_model_len": 32768}]})

    async def metrics(self, request: web.Request) -> web.Response:
        label = '{model_name="llm"}'
        return web.Response(text=(
            f"# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running{label} "
            f"{self.running}\n# TYPE vllm:num_requests_waiting gauge\n"
            f"vllm:num_requests_waiting{label} {self.waiting + self.external_waiting}\n"))

    def cached(self, prompt: str) -> int:
        """Characters of `prompt` this server's cache holds (its longest cached prefix)."""
        best = 0
        for seen in self.cache:
            if prompt.startswith(seen) and len(seen) > best:
                best = len(seen)
        self.cache[prompt] = None
        self.cache.move_to_end(prompt)
        while len(self.cache) > self.cache_entries:
            self.cache.popitem(last=False)
        return best

    async def chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        # The prompt as the engine sees it: each turn appended to the last.
        prompt = "".join(f"{m['role']}: {m['content']}\n" for m in body["messages"])
        self.waiting += 1
        async with self.slots:
            self.waiting -= 1
            self.running += 1
            try:
                return await self._answer(request, prompt)
            finally:
                self.running -= 1

    async def _answer(self, request: web.Request, prompt: str) -> web.StreamResponse:
        tokens = len(prompt) // CHARS_PER_TOKEN
        cached = min(tokens, self.cached(prompt) // CHARS_PER_TOKEN)
        self.prompt_tokens += tokens
        self.cached_tokens += cached
        self.served += 1
        await asyncio.sleep((BASE_MS + (tokens - cached) * PREFILL_MS_PER_TOKEN) / 1000)
        out = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await out.prepare(request)
        for i in range(CHUNKS):
            chunk = {"choices": [{"index": 0, "delta": {"content": f"t{i} "}}]}
            await out.write(f"data: {json.dumps(chunk)}\n\n".encode())
            await asyncio.sleep(CHUNK_MS / 1000)
        usage = {"prompt_tokens": tokens, "completion_tokens": CHUNKS,
                 "prompt_tokens_details": {"cached_tokens": cached}}
        await out.write(f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n".encode())
        await out.write(b"data: [DONE]\n\n")
        await out.write_eof()
        return out

    async def hold_all_slots(self, slots: int) -> list[asyncio.Task[None]]:
        """Traffic from elsewhere: twice as many clients as slots, each sending one
        long request after another, so every slot stays taken and a queue stands."""
        async def client() -> None:
            while True:
                self.external_waiting += 1
                async with self.slots:
                    self.external_waiting -= 1
                    self.running += 1
                    try:
                        await asyncio.sleep(0.25)
                    finally:
                        self.running -= 1

        tasks = [asyncio.create_task(client()) for _ in range(2 * slots)]
        await asyncio.sleep(0.05)
        return tasks


def nexus_config(servers: list[SimServer], slots: int, redis_url: str | None) -> Config:
    raw: dict[str, Any] = {
        "health_check": {"interval_seconds": 3600, "timeout_seconds": 5},
        "backends": [{"name": s.name, "url": s.url, "type": "vllm", "models": ["llm"],
                      "max_concurrent": slots * 4, "engine_interval_seconds": 0.2}
                     for s in servers]}
    if redis_url:
        raw["redis"] = {"url": redis_url, "prefix": f"bench-{random.randrange(1 << 30)}",
                        "snapshot_interval_seconds": 0.2}
    config = msgspec.convert(raw, Config)
    validate(config, "<bench>")
    return config


@contextlib.asynccontextmanager
async def replicas(config: Config, count: int) -> AsyncIterator[list[str]]:
    runners = []
    for _ in range(count):
        app = create_app(config, {})
        runner = GatewayRunner(app, app[EDGE], access_log=None, shutdown_timeout=1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        runners.append(runner)
    await asyncio.sleep(1.0)  # a scrape of the engines' gauges, and a leader in a fleet
    try:
        yield [f"http://127.0.0.1:{r.addresses[0][1]}" for r in runners]
    finally:
        for runner in runners:
            await runner.cleanup()


Placement = Callable[[int, int], str]  # (conversation, turn) -> base URL


async def ask(http: aiohttp.ClientSession, url: str, messages: list[dict[str, str]]) -> float:
    """The time to the first content chunk, in ms."""
    started = time.perf_counter()
    async with http.post(url + "/v1/chat/completions",
                         json={"model": "llm", "messages": messages, "stream": True}) as r:
        assert r.status == 200, await r.text()
        ttft = None
        async for line in r.content:
            if ttft is None and line.startswith(b"data: {\"choices\": [{"):
                ttft = (time.perf_counter() - started) * 1000
        return ttft if ttft is not None else (time.perf_counter() - started) * 1000


def history(n: int, turn: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": SYSTEM},
                {"role": "user", "content": f"Conversation {n}: tell me about topic {n}."}]
    for t in range(1, turn + 1):
        messages += [{"role": "assistant", "content": f"Answer {t} " * 60},
                     {"role": "user", "content": f"Follow-up {t} on topic {n}."}]
    return messages


async def conversations(placement: Placement, args: argparse.Namespace) -> list[float]:
    ttfts: list[float] = []
    gate = asyncio.Semaphore(args.parallel)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def chat(n: int) -> None:
            async with gate:
                for turn in range(args.turns):
                    ttfts.append(await ask(http, placement(n, turn), history(n, turn)))
        await asyncio.gather(*(chat(n) for n in range(args.conversations)))
    return ttfts


async def unique(placement: Placement, count: int, parallel: int) -> list[float]:
    ttfts: list[float] = []
    gate = asyncio.Semaphore(parallel)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        async def one(i: int) -> None:
            async with gate:
                messages = [{"role": "user", "content": f"Unique question {i}: " + "x" * 2000}]
                ttfts.append(await ask(http, placement(i, 0), messages))
        await asyncio.gather(*(one(i) for i in range(count)))
    return ttfts


def p(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] if len(values) > 1 else values[0]


async def fleet(n: int, slots: int) -> list[SimServer]:
    return [await SimServer(f"gpu-{i}", slots).start() for i in range(n)]


async def run_mode(mode: str, args: argparse.Namespace, redis_url: str | None,
                   load: str) -> dict[str, Any]:
    servers = await fleet(args.servers, args.slots)
    held: list[asyncio.Task[None]] = []
    if load == "saturated":
        held = await servers[0].hold_all_slots(args.slots)
    rng = random.Random(7)
    counter = iter(range(1 << 30))
    try:
        if mode.startswith("nexus"):
            count = 2 if mode == "nexus-2" else 1
            config = nexus_config(servers, args.slots, redis_url if count == 2 else None)
            async with replicas(config, count) as urls:
                def via(n: int, turn: int) -> str:
                    return urls[(n + turn) % len(urls)]
                ttfts = await _load(load, via, args)
        else:
            def direct(n: int, turn: int) -> str:
                if mode == "random":
                    return servers[rng.randrange(len(servers))].url
                if mode == "even":
                    return servers[next(counter) % len(servers)].url
                return servers[n % len(servers)].url  # oracle: pinned, spread evenly
            ttfts = await _load(load, direct, args)
    finally:
        for task in held:
            task.cancel()
        for server in servers:
            assert server.runner is not None
            await server.runner.cleanup()
    asked = sum(s.prompt_tokens for s in servers)
    return {"mode": mode, "hit_rate": sum(s.cached_tokens for s in servers) / max(asked, 1),
            "p50": p(ttfts, 50), "p90": p(ttfts, 90),
            "to_saturated": servers[0].served / max(1, sum(s.served for s in servers)),
            "per_server": [s.served for s in servers]}


async def _load(load: str, placement: Placement, args: argparse.Namespace) -> list[float]:
    if load == "unique":
        return await unique(placement, args.unique, args.parallel)
    return await conversations(placement, args)


def line(r: dict[str, Any], load: str) -> str:
    extra = f"  to the saturated server {r['to_saturated']:.1%}" if load == "saturated" else ""
    return (f"  {r['mode']:<8} hit rate {r['hit_rate']:.2f}  TTFT p50 {r['p50']:6.1f} ms"
            f"  p90 {r['p90']:6.1f} ms  per server {r['per_server']}{extra}")


def start_redis(redis_dir: str) -> RedisServer | None:
    binary = redis_binary()
    if not (shutil.which(binary) or Path(binary).exists()):
        return None
    return RedisServer(Path(redis_dir), appendonly=False).start()


async def main_async(args: argparse.Namespace) -> None:
    redis_dir = tempfile.mkdtemp()
    server = start_redis(redis_dir)
    try:
        url = server.url if server else None
        for load, modes in (("conversations", ["oracle", "random", "nexus-1", "nexus-2"]),
                            ("unique", ["even", "random", "nexus-1"]),
                            ("saturated", ["oracle", "nexus-1", "nexus-2"])):
            print(f"{load}:")
            for mode in modes:
                if mode == "nexus-2" and url is None:
                    print("  nexus-2  skipped: no redis-server")
                    continue
                print(line(await run_mode(mode, args, url, load), load), flush=True)
    finally:
        if server is not None:
            server.kill()
        shutil.rmtree(redis_dir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=4)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--conversations", type=int, default=32)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--parallel", type=int, default=12)
    parser.add_argument("--unique", type=int, default=120)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
