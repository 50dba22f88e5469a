"""Prefix affinity and the load the engines report: rendezvous agreement between
replicas, an even spread of unrelated requests, the bounded-load guard, the scorers
(queue depth, KV pressure, warmth), and a latency average that fades."""

from __future__ import annotations

import collections
import time
from typing import Any

import aiohttp
import pytest

from nexus.backends.backend import Backend
from nexus.backends.engine import EngineSignals
from nexus.config.schema import BackendConfig, HealthCheckConfig, RoutingConfig
from nexus.routing.affinity import Affinity, AffinityKey, leading_block, prefix_key, session_key
from nexus.routing.scoring import LATENCY_HALF_LIFE_SECONDS, Scorer, speed_of
from tests.support.helpers import GatewayFactory, MockFactory, backend, make_config


def fleet(n: int = 4, **fields: Any) -> list[Backend]:
    return [Backend(BackendConfig(name=f"gpu-{i}", url=f"http://127.0.0.1:{9000 + i}",
                                  type="vllm", **fields), HealthCheckConfig())
            for i in range(n)]


def key(i: int) -> AffinityKey:
    return AffinityKey(i * 0x9E3779B97F4A7C15 & ((1 << 64) - 1), "prefix")


def engine(**fields: Any) -> EngineSignals:
    return EngineSignals(read_at=time.monotonic(), max_age=60, **fields)


def test_two_replicas_pick_the_same_backend_whatever_order_they_list_them() -> None:
    one, two = Affinity(1.5, 4), Affinity(1.5, 4)  # two replicas: no shared state
    backends = fleet()
    for i in range(200):
        assert one.pick(key(i), backends)[0] is two.pick(key(i), backends[::-1])[0]


def test_unrelated_conversations_spread_evenly() -> None:
    counts = collections.Counter(Affinity(1.5, 4).pick(key(i), fleet())[0].name
                                 for i in range(4_000))
    assert len(counts) == 4
    assert all(850 <= n <= 1_150 for n in counts.values()), counts


def test_a_backend_leaving_moves_only_its_own_conversations() -> None:
    affinity, backends = Affinity(1.5, 4), fleet()
    before = {i: affinity.pick(key(i), backends)[0].name for i in range(1_000)}
    after = {i: affinity.pick(key(i), backends[:3])[0].name for i in range(1_000)}
    moved = {i for i in before if before[i] != after[i]}
    assert moved == {i for i in before if before[i] == "gpu-3"}


def test_the_preferred_backend_keeps_the_conversation_until_clearly_busier() -> None:
    affinity, backends = Affinity(1.5, 4), fleet()
    preferred = affinity.ranked(key(7), backends)[0]
    preferred.in_flight = 3  # busier, but not by the gap
    assert affinity.pick(key(7), backends)[0] is preferred
    preferred.in_flight = 4  # 4 >= 1.5 x 0 and 4 - 0 >= 4: balance
    chosen, why = affinity.pick(key(7), backends)
    assert chosen is not preferred
    assert why.startswith("load: affinity prefix:")
    assert f"preferred {preferred.name} (busy 4 vs 0)" in why


def test_a_saturated_engine_sends_the_conversation_elsewhere() -> None:
    affinity, backends = Affinity(1.5, 4), fleet()
    preferred = affinity.ranked(key(3), backends)[0]
    preferred.state.engine = engine(running=2, waiting=1)  # a queue: traffic from outside
    assert affinity.pick(key(3), backends)[0] is not preferred
    for other in backends:
        other.state.engine = engine(running=2, waiting=1)  # all saturated: stay
    assert affinity.pick(key(3), backends)[0] is preferred


def test_session_keys_come_first_and_turns_of_one_conversation_share_a_prefix_key() -> None:
    assert session_key("s-1", "cache", "user").source == "session"  # type: ignore[union-attr]
    assert session_key(None, "cache", "user").source == "prompt_cache_key"  # type: ignore[union-attr]
    assert session_key(None, None, "") is None
    system = {"role": "system", "content": "You are terse."}
    first = {"role": "user", "content": "What is a GPU?"}
    turn1 = [system, first]
    turn3 = [system, first, {"role": "assistant", "content": "A chip."},
             {"role": "user", "content": "And a TPU?"}]

    def role(m: dict[str, str]) -> str:
        return m["role"]

    assert prefix_key(leading_block(turn1, role)) == prefix_key(leading_block(turn3, role))
    other = [system, {"role": "user", "content": "Something else"}]
    assert prefix_key(leading_block(other, role)) != prefix_key(leading_block(turn1, role))


def test_queue_depth_kv_pressure_and_warmth_are_scored() -> None:
    scorer = Scorer(RoutingConfig().weights, min_requests=10)
    idle, queued, full_cache, cold = fleet(4, max_concurrent=8)
    queued.state.engine = engine(running=4, waiting=6, slots=4)
    full_cache.state.engine = engine(kv_usage=0.95)
    cold.state.engine = engine(loaded=frozenset({"other-model"}))
    scores = scorer.score_all([idle, queued, full_cache, cold], {}, "llm")
    assert scores[0] > scores[3] > scores[2] > scores[1] == 0.0
    parts = scorer.parts(full_cache, 1.0, "llm")
    assert parts.cache == pytest.approx(1 - 0.95 ** 2)
    assert scorer.parts(cold, 1.0, "llm").warmth == 0.5


def test_a_slow_latency_average_fades_so_the_backend_is_tried_again() -> None:
    slow = fleet(1)[0]
    slow.state.observe_latency(900.0)
    now = slow.state.latency_at
    assert speed_of(slow, now) == pytest.approx(100 / 1000)
    assert speed_of(slow, now + LATENCY_HALF_LIFE_SECONDS) == pytest.approx(1 - 0.5 * 0.9)
    assert speed_of(slow, now + 99 * LATENCY_HALF_LIFE_SECONDS) == pytest.approx(1 - 0.9 / 100)


# -- through the gateway ------------------------------------------------------------------

def conversation(n: int, turns: int) -> list[list[dict[str, str]]]:
    history = [{"role": "system", "content": "You answer briefly."},
               {"role": "user", "content": f"conversation {n}: hello"}]
    out = [list(history)]
    for t in range(1, turns):
        history += [{"role": "assistant", "content": f"answer {t}"},
                    {"role": "user", "content": f"question {t}"}]
        out.append(list(history))
    return out


async def ask(http: aiohttp.ClientSession, url: str, messages: list[dict[str, str]],
              path: str = "/v1/chat/completions", **headers: str) -> tuple[str, str]:
    async with http.post(url + path, json={"model": "llm", "messages": messages},
                         headers=headers) as r:
        assert r.status == 200, await r.text()
        if path.endswith("explain"):
            decision = (await r.json())["decision"]
            return decision["backend"], decision["reason"]
        return r.headers["X-Nexus-Backend"], r.headers["X-Nexus-Route-Reason"]


async def test_two_replicas_keep_each_conversation_on_one_server_and_spread_the_rest(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mocks = [await mock_backend(f"gpu-{i}", models=["llm"]) for i in range(4)]
    config = make_config([backend(m, type="vllm", engine="off") for m in mocks])
    replicas = [await gateway(config), await gateway(config)]  # no Redis: nothing shared
    placed: dict[int, set[str]] = collections.defaultdict(set)
    for turn in range(4):
        for n in range(24):
            served, reason = await ask(http, replicas[(n + turn) % 2].url,
                                       conversation(n, 4)[turn])
            placed[n].add(served)
            assert reason.startswith("affinity prefix:")
    assert all(len(servers) == 1 for servers in placed.values())  # every turn, one server
    per_server = collections.Counter(next(iter(s)) for s in placed.values())
    assert len(per_server) == 4  # and the conversations spread over all four
    explained = await ask(http, replicas[0].url, conversation(5, 4)[3], "/v1/routing/explain")
    assert explained[0] == next(iter(placed[5]))
    assert explained[1].startswith("affinity prefix:")


async def test_a_session_header_keys_the_conversation_and_affinity_can_be_off(
        mock_backend: MockFactory, gateway: GatewayFactory,
        http: aiohttp.ClientSession) -> None:
    mocks = [await mock_backend(f"gpu-{i}", models=["llm"]) for i in range(3)]
    gw = await gateway(make_config([backend(m, engine="off") for m in mocks]))
    chosen = {(await ask(http, gw.url, conversation(n, 1)[0], **{"X-Session-Id": "s-42"}))[0]
              for n in range(12)}
    assert len(chosen) == 1  # twelve different prompts, one session: one server
    off = await gateway(make_config([backend(m, engine="off") for m in mocks],
                                    routing={"affinity": "off"}))
    reason = (await ask(http, off.url, conversation(1, 1)[0]))[1]
    assert reason.startswith("smart score=")
    only_sessions = await gateway(make_config([backend(m, engine="off") for m in mocks],
                                              routing={"affinity": "session"}))
    reason = (await ask(http, only_sessions.url, conversation(1, 1)[0]))[1]
    assert reason.startswith("smart score=")  # no session: a prefix key does not count
    reason = (await ask(http, only_sessions.url, conversation(1, 1)[0],
                        **{"X-Session-Id": "s-7"}))[1]
    assert reason.startswith("affinity session:")
