"""Time the routing pipeline, RequestAnalyzer through SchedulerReconciler, on one core.

No JSON decoding and no I/O: the request body is decoded once up front, as the
gateway does before routing. Prints p50/p95/p99 of the whole decision and of
each stage, for a fleet of 20 backends with 50 policies and one of 200 backends.

    python benchmarks/pipeline_bench.py [--iterations 20000]
"""

from __future__ import annotations

import argparse
import gc
import random
import time

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.registry import Registry
from nexus.config.schema import Config
from nexus.routing.intent import RoutingIntent
from nexus.routing.request import RoutingRequest
from nexus.routing.router import Router

MODELS = ["llama3:8b", "llama3:70b", "qwen2:72b", "gpt-4o", "mistral:7b"]
PAYLOAD = {"model": "llama3:70b", "max_tokens": 256, "messages": [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the plot of Hamlet in three sentences." * 4}]}


def fleet(backends: int, policies: int) -> Router:
    rng = random.Random(1)
    raw_backends = [{
        "name": f"gpu-{i}", "url": f"http://10.0.{i // 250}.{i % 250 + 1}:8000",
        "models": ["llama3:70b", *rng.sample(MODELS, 2)],
        "zone": rng.choice(["restricted", "open"]), "tier": rng.randint(1, 4),
        "priority": rng.randint(1, 100), "max_concurrent": 64,
    } for i in range(backends)]
    # Policies for other model families, then one that matches: the worst case for
    # first-match-wins is a match at the end of the list.
    raw_policies = [{"model_pattern": f"team-{i}-*", "privacy": "restricted"}
                    for i in range(policies - 1)]
    raw_policies.append({"model_pattern": "llama3:*", "min_tier": 2,
                         "max_cost_per_request": 1.0})
    config = msgspec.convert({"backends": raw_backends, "routing": {
        "policies": raw_policies, "budget": {"monthly_limit_usd": 1000.0}}}, Config)
    registry = Registry([Backend(b, config.health_check, {}) for b in config.backends])
    for backend in registry:
        backend.health.success()
        backend.observe_latency(rng.uniform(20, 400))
        backend.in_flight = rng.randint(0, 32)
        for _ in range(rng.randint(0, 30)):
            backend.metrics.success()
    return Router(config.routing, registry, rng=random.Random(2))


def percentiles(samples: list[int]) -> tuple[float, float, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # ns -> µs

    return at(0.50), at(0.95), at(0.99)


def time_decisions(router: Router, iterations: int) -> list[int]:
    request = RoutingRequest(model="llama3:70b", payload=PAYLOAD, request_id="bench")
    for _ in range(1000):  # warm the policy and price caches
        router.decide(request)
    samples = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        start = clock()
        router.decide(request)
        samples.append(clock() - start)
    return samples


def time_stages(router: Router, iterations: int) -> dict[str, list[int]]:
    stages = router.pipeline.stages
    samples: dict[str, list[int]] = {stage.name: [] for stage in stages}
    samples["decide"] = []
    clock = time.perf_counter_ns
    for _ in range(iterations):
        intent = RoutingIntent(request_id="bench", requested_model="llama3:70b",
                               resolved_model="llama3:70b", payload=PAYLOAD)
        for stage in stages:
            start = clock()
            stage.reconcile(intent)
            samples[stage.name].append(clock() - start)
        start = clock()
        router.pipeline.decider.decide(intent)
        samples["decide"].append(clock() - start)
    return samples


def report(label: str, router: Router, iterations: int) -> None:
    gc.collect()
    gc.disable()  # collector pauses are the runtime's, not the pipeline's; shown separately
    try:
        total = time_decisions(router, iterations)
        stages = time_stages(router, iterations)
    finally:
        gc.enable()
    with_gc = time_decisions(router, iterations)
    print(f"\n{label}")
    print(f"  {'stage':<22} {'p50 µs':>8} {'p95 µs':>8} {'p99 µs':>8}")
    for name, values in stages.items():
        print(f"  {name:<22} {percentiles(values)[0]:>8.1f} {percentiles(values)[1]:>8.1f} "
              f"{percentiles(values)[2]:>8.1f}")
    for name, values in (("whole decision", total), ("whole decision, gc on", with_gc)):
        p50, p95, p99 = percentiles(values)
        print(f"  {name:<22} {p50:>8.1f} {p95:>8.1f} {p99:>8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args()
    report("20 backends, 50 policies", fleet(20, 50), args.iterations)
    report("200 backends, 50 policies", fleet(200, 50), args.iterations // 4)



if __name__ == "__main__":
    main()
