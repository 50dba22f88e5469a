"""Allowances: a replica's block of a busy key's limits, and what goes back of it.

The rules on a fake clock first; then against a real redis-server: the block is
counted in Redis when granted, what is left of it goes back with the next call, and
near a limit every request is checked one by one (so the count stays exact), with one
replica or three sharing a key.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import NamedTuple

import msgspec
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from nexus.config.schema import RedisConfig
from nexus.store.errors import StoreError
from nexus.store.redis_store import RedisStore
from nexus.tenants import allowance as allowance_module
from nexus.tenants.allowance import ALLOWANCE_SECONDS, MIN_SLOTS, Allowance, Allowances, Ask
from nexus.tenants.rates import Quota, RateCheck, RateSubject, RateVerdict
from tests.support.redis_server import RedisServer
from tests.support.redis_topologies import RedisClusterServers

KEY = RateSubject("key:alice", rpm=10_000, tpm=1_000_000)
TEAM = RateSubject("team:research", rpm=50_000)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def check(request_id: str, tokens: int = 10,
          subjects: tuple[RateSubject, ...] = (KEY,)) -> RateCheck:
    return RateCheck(request_id, tokens, subjects)


def grant(checked: RateCheck) -> RateVerdict:
    return RateVerdict(True, tuple(Quota(s, 5_000, 500_000, 60_000) for s in checked.subjects))


def paced(allowances: Allowances, clock: Clock, arrivals: int, seconds: float) -> None:
    """`arrivals` requests of alice over `seconds`, each checked by Redis (none open)."""
    for n in range(arrivals):
        assert allowances.take(check(f"paced{n}")) is None
        clock.now += seconds / arrivals


class Granted(NamedTuple):
    allowances: Allowances
    clock: Clock
    ask: Ask
    block: Allowance


async def granted_block(wake: Callable[[], None] = lambda: None) -> Granted:
    """Alice at 400 requests a second (a period's worth is 100) asks, and is granted."""
    clock = Clock()
    allowances = Allowances(clock, wake)
    paced(allowances, clock, 40, 0.1)
    asker = check("asker")
    assert allowances.take(asker) is None
    ask = allowances.ask(asker)
    assert ask is not None
    allowances.answered(asker, ask, grant(asker))
    assert asker.allowance is not None
    return Granted(allowances, clock, ask, asker.allowance)


async def test_a_block_is_sized_to_the_keys_pace_and_asked_for_once() -> None:
    clock = Clock()
    allowances = Allowances(clock)
    first = check("first")
    assert allowances.take(first) is None
    assert allowances.ask(first) is None  # one request is no pace
    paced(allowances, clock, 40, 0.1)
    asker = check("asker")
    allowances.take(asker)
    ask = allowances.ask(asker)
    assert ask is not None
    assert abs(ask.slots - 42 * ALLOWANCE_SECONDS / 0.1) <= 1  # 42 arrivals in 0.1 s
    assert ask.tokens == ask.slots * 10                     # their mean estimate each
    other = check("other")
    allowances.take(other)
    assert allowances.ask(other) is None                     # one ask out at a time
    assert allowances.pending(other) is ask
    allowances.answered(asker, ask, None)                    # refused: over the half
    allowances.answered(asker, ask, grant(asker), RuntimeError())  # answered once only
    assert asker.allowance is None
    assert ask.answered.done()
    assert allowances.pending(other) is None
    paced(allowances, clock, 40, 0.1)
    assert allowances.ask(check("again")) is None            # quiet for a period after
    clock.now += ALLOWANCE_SECONDS
    paced(allowances, clock, 40, 0.1)
    assert allowances.ask(check("later")) is not None


async def test_a_slower_key_gets_the_smallest_block_over_a_longer_period() -> None:
    clock = Clock()
    allowances = Allowances(clock)
    paced(allowances, clock, 8, 1.0)              # 8 a second: a quarter second holds 2
    ask = allowances.ask(check("slower"))
    assert ask is not None
    assert ask.slots == MIN_SLOTS
    assert ask.period == pytest.approx(MIN_SLOTS / 8, rel=0.01)  # 8 arrivals in 1 s
    allowances.answered(check("slower"), ask, None)
    clock.now += 1.0
    paced(allowances, clock, 2, 1.0)              # 2 a second: 8 slots would take 4 s
    assert allowances.ask(check("slowest")) is None


async def test_a_key_that_was_quiet_for_long_earns_a_block_as_soon_as_it_is_busy() -> None:
    clock = Clock()
    allowances = Allowances(clock)
    paced(allowances, clock, 3600, 3600.0)        # an hour at one request a second
    assert allowances.ask(check("slow")) is None  # no block for that pace: measured afresh
    paced(allowances, clock, 40, 0.1)             # then 400 a second
    ask = allowances.ask(check("busy"))
    assert ask is not None
    assert 99 <= ask.slots <= 100  # 40 in 0.1 s (the fake clock's sums round)


async def test_a_block_admits_its_slots_then_gives_back_nothing() -> None:
    woken: list[int] = []
    allowances, _, ask, block = await granted_block(wake=lambda: woken.append(1))
    assert block.slots == ask.slots + 1
    admitted = [check(f"r{n}") for n in range(ask.slots)]
    verdicts = [allowances.take(c) for c in admitted]
    assert all(v is not None and v.allowed for v in verdicts)
    assert all(c.allowance is block for c in admitted)
    first, last = verdicts[0], verdicts[-1]
    assert first is not None
    assert last is not None
    assert first.headers == {                           # the spare counts
        "x-ratelimit-limit-requests": "10000", "x-ratelimit-reset-requests": "60s",
        "x-ratelimit-remaining-requests": str(5_000 + ask.slots - 1),
        "x-ratelimit-limit-tokens": "1000000", "x-ratelimit-reset-tokens": "60s",
        "x-ratelimit-remaining-tokens": str(500_000 + ask.tokens - 10)}
    assert last.headers is not None
    assert last.headers["x-ratelimit-remaining-requests"] == "5000"
    assert block.closed
    assert woken
    assert allowances.take(check("next")) is None       # the next goes to Redis
    assert allowances.writes() == []  # every slot used, its tokens as estimated
    allowances.settle(admitted[0], 4)
    (write,) = allowances.writes()
    assert (write.drop_from, write.drop_to) == (block.slots, block.slots)  # none unused
    assert (write.recorded, write.tokens) == (10 * block.slots, 10 * block.slots - 6)


async def test_at_its_periods_end_a_block_gives_back_its_unused_slots_and_tokens() -> None:
    allowances, clock, ask, block = await granted_block()
    used = [check(f"r{n}") for n in range(5)]
    for c in used:
        assert allowances.take(c) is not None
    allowances.settle(used[0], 4)      # open: its block takes the change, no write yet
    assert allowances.writes() == []
    clock.now += ALLOWANCE_SECONDS
    assert allowances.take(check("late")) is None       # over: closes, goes to Redis
    (write,) = allowances.writes()
    assert (write.drop_from, write.drop_to) == (6, block.slots)
    assert (write.recorded, write.tokens) == (10 + ask.tokens, 6 * 10 - 6)
    allowances.settle(used[1], 7)      # closed: a correction of the slot 0 entry
    (correction,) = allowances.writes()
    assert (correction.recorded, correction.tokens) == (54, 51)
    assert correction.drop_from == correction.drop_to   # given back already


async def test_a_request_its_block_has_no_tokens_for_closes_it() -> None:
    allowances, _, ask, block = await granted_block()
    assert allowances.take(check("big", tokens=ask.tokens + 1)) is None
    assert block.closed
    (write,) = allowances.writes()
    assert (write.drop_from, write.tokens) == (1, 10)


async def test_a_timer_closes_an_idle_block() -> None:
    allowances, _, _, block = await granted_block()
    allowances.expire(block)
    assert block.closed
    assert allowances.take(check("next")) is None
    (write,) = allowances.writes()
    assert write.drop_from == 1


# -- against Redis ---------------------------------------------------------------------
@pytest.fixture(params=["redis", "cluster"])
async def stores(request: pytest.FixtureRequest,
                 redis_prefix: str) -> AsyncIterator[list[RedisStore]]:
    """Three replicas' stores on one Redis server, or on a three-master cluster."""
    if request.param == "cluster":
        cluster: RedisClusterServers = request.getfixturevalue("redis_cluster")
        config = RedisConfig(mode="cluster", url=cluster.url, prefix=redis_prefix)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        config = RedisConfig(url=server.url, prefix=redis_prefix)
    made = [RedisStore(config) for _ in range(3)]
    for store in made:
        await store.start()
    yield made
    for store in made:
        await store.close()


async def waves(stores: list[RedisStore], subject: RateSubject, count: int,
                size: int) -> list[tuple[RateCheck, RateVerdict]]:
    """`count` checks in concurrent waves of `size`, spread over the stores in turn."""
    done: list[tuple[RateCheck, RateVerdict]] = []
    for start in range(0, count, size):
        checks = [check(f"w{n}", 20 + n % 5, (subject,)) for n in range(start, start + size)]
        verdicts = await asyncio.gather(*(stores[n % len(stores)].rate_check(c)
                                          for n, c in enumerate(checks)))
        done += zip(checks, verdicts, strict=True)
    return done


async def give_back(stores: list[RedisStore]) -> None:
    """What each replica does as it stops: every open block closes and goes back."""
    for store in stores:
        await store.tenants.give_back()


async def test_a_busy_key_far_from_its_limits_is_admitted_from_blocks_and_counted_exactly(
        stores: list[RedisStore]) -> None:
    subject = RateSubject("key:busy", rpm=1_000_000, tpm=100_000_000)
    store = stores[0]
    done = await waves([store], subject, 2000, 50)
    assert all(verdict.allowed for _, verdict in done)
    from_blocks = [c for c, _ in done if c.allowance is not None]
    assert len(from_blocks) > 1500, "a steady pace is admitted from blocks"
    for checked, _ in done:
        store.settle_rate(checked, 7)                  # what each request used
    await give_back([store])
    assert await store.rate_usage(subject) == (2000, 2000 * 7)


async def test_near_its_limit_a_key_is_checked_one_by_one_and_stays_exact(
        stores: list[RedisStore], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allowance_module, "MAX_SLOTS", 20)  # blocks fit under the half
    subject = RateSubject("key:near", rpm=300)
    store = stores[0]
    done = await waves([store], subject, 500, 10)
    admitted = [c for c, v in done if v.allowed]
    assert len(admitted) == 300
    assert any(c.allowance is not None for c in admitted), "blocks were granted"
    assert all(v.refused_by == subject.name for _, v in done if not v.allowed)
    await give_back([store])
    assert (await store.rate_usage(subject))[0] == 300


async def test_three_replicas_with_blocks_never_pass_a_limit_and_give_back_every_slot(
        stores: list[RedisStore], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(allowance_module, "MAX_SLOTS", 20)
    subject = RateSubject("key:shared", rpm=600, tpm=15_000)
    done = await waves(stores, subject, 900, 30)
    admitted = [c for c, v in done if v.allowed]
    assert any(c.allowance is not None for c in admitted), "blocks were granted"
    assert len(admitted) <= 600
    assert sum(c.tokens for c in admitted) <= 15_000
    await give_back(stores)
    assert await stores[0].rate_usage(subject) == (len(admitted),
                                                  sum(c.tokens for c in admitted))


async def test_when_an_asks_call_fails_its_waiters_fail_with_it_without_another_call(
        stores: list[RedisStore], monkeypatch: pytest.MonkeyPatch) -> None:
    tenants = stores[0].tenants
    calls: list[int] = []

    class Refusing:  # the check line, its Redis gone
        one_node = tenants._rate.one_node

        async def __call__(self, keys: list[str], args: list[object]) -> object:
            calls.append(len(keys))
            raise RedisConnectionError("connection refused")

    monkeypatch.setattr(tenants, "_rate", Refusing())
    asked = tenants.allowances.ask
    monkeypatch.setattr(tenants.allowances, "ask", lambda c: asked(c) or Ask(10, 0))
    subject = RateSubject("key:waiting", rpm=1_000_000)
    results = await asyncio.gather(*(stores[0].rate_check(check(f"c{n}", 1, (subject,)))
                                     for n in range(5)), return_exceptions=True)
    assert all(isinstance(r, StoreError) for r in results), results
    assert len(calls) == 1  # the four behind the ask waited for it, then failed with it


async def test_a_stopping_replica_gives_back_its_open_blocks(
        stores: list[RedisStore], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ALLOWANCE_SECONDS", "MAX_PERIOD_SECONDS"):  # open until it stops,
        monkeypatch.setattr(allowance_module, name, 60.0)     # however slow the machine
    subject = RateSubject("key:stopping", rpm=1_000_000)
    leaving = RedisStore(stores[0].config)
    await leaving.start()
    try:
        done = await waves([leaving], subject, 400, 40)
        assert any(c.allowance is not None and not c.allowance.closed for c, _ in done)
        requests, _ = await stores[0].rate_usage(subject)
        assert requests > 400, "an open block's unused slots count while it is open"
    finally:
        await leaving.close()
    assert (await stores[0].rate_usage(subject))[0] == 400


async def test_with_allowances_off_every_check_goes_to_redis(
        stores: list[RedisStore]) -> None:
    strict = RedisStore(msgspec.structs.replace(stores[0].config, rate_allowances=False))
    await strict.start()
    try:
        subject = RateSubject("key:strict", rpm=1_000_000)
        done = await waves([strict], subject, 400, 40)
        assert all(verdict.allowed for _, verdict in done)
        assert all(checked.allowance is None for checked, _ in done)
        assert (await strict.rate_usage(subject))[0] == 400  # nothing ahead, nothing held
    finally:
        await strict.close()
