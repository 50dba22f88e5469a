"""Leader election by lease: one replica at a time runs the fleet-wide duties.

The lease is a key set with `SET NX PX` and a random token; renewal and release
check the token in Lua, so only the holder can extend or drop it. Every new
acquisition increases an epoch; leader-only writes carry it and are refused when
stale, so a leader paused past its lease cannot undo its successor's work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets

import redis.asyncio as redis

from nexus.core.tasks import stop_if_cancelled
from nexus.store.errors import StoreError, store_errors
from nexus.store.keys import Keys
from nexus.store.lua import lua_script
from nexus.store.replication import Replicated

log = logging.getLogger(__name__)
RENEWALS_PER_TTL = 3   # renew three times per lease lifetime: two may fail before it lapses
JITTER = 0.2           # +-20% on each wait, so replicas do not knock in lockstep


class Leadership:
    def __init__(self, client: redis.Redis, keys: Keys, replica_id: str, ttl_ms: int,
                 rng: random.Random | None = None,
                 replicated: Replicated | None = None) -> None:
        self.client = client
        # A lease (and its epoch) counts only once replicas have it: a failover must not
        # hand the next leader an epoch this one already used.
        self.replicated = replicated or Replicated(client, 0, 0)
        self.keys = keys
        self.replica_id = replica_id
        self.ttl_ms = ttl_ms
        self.token = f"{replica_id}/{secrets.token_hex(8)}"
        self.epoch = 0          # the epoch we lead in; 0 while we do not lead
        self.changed = asyncio.Event()  # set whenever we gain or lose the lease
        self._rng = rng or random.Random()
        self._acquire = client.register_script(lua_script("lease_acquire"))
        self._renew = client.register_script(lua_script("lease_renew"))
        self._release = client.register_script(lua_script("lease_release"))
        self._fenced_hset = client.register_script(lua_script("fenced_hset"))

    @property
    def leading(self) -> bool:
        return self.epoch > 0

    @property
    def period_seconds(self) -> float:
        return self.ttl_ms / 1000 / RENEWALS_PER_TTL

    async def run_forever(self) -> None:
        try:
            while True:
                stop_if_cancelled()
                await self.step()
                await asyncio.sleep(self.period_seconds * self._rng.uniform(1 - JITTER,
                                                                            1 + JITTER))
        finally:
            with contextlib.suppress(StoreError, asyncio.CancelledError, TimeoutError):
                await asyncio.shield(self.release())

    async def step(self) -> None:
        """Acquire when free, renew when ours; a Redis error means we cannot know: stop
        leading (the lease will lapse on its own if we held it)."""
        try:
            with store_errors():
                await self._step()
        except StoreError as exc:
            stop_if_cancelled()
            if self.leading:
                self._lose(f"Redis error: {exc}")

    async def _step(self) -> None:
        if self.leading:
            if not int(await self._renew(keys=[self.keys.leader],
                                         args=[self.token, self.ttl_ms])):
                self._lose("the lease was lost (expired or taken)")
        else:
            epoch = int(await self.replicated.call(
                self._acquire, [self.keys.leader, self.keys.leader_epoch],
                [self.token, self.ttl_ms]))
            if epoch:
                self._gain(epoch)

    async def release(self) -> None:
        if self.leading:
            with store_errors():
                await self._release(keys=[self.keys.leader], args=[self.token])
            self.epoch = 0
            log.info("replica %s released the lead on shutdown", self.replica_id)
            self.changed.set()

    async def fenced_hset(self, key: str, fields: dict[str, str | int | float],
                          ttl_seconds: int = 0) -> bool:
        """Write hash fields as the leader; False (and we stop leading) if the epoch moved on."""
        if not self.leading:
            return False
        args: list[str | int | float] = [self.epoch, ttl_seconds]
        for field, value in fields.items():
            args += [field, value]
        written = int(await self._fenced_hset(keys=[self.keys.leader_epoch, key], args=args))
        if not written:
            self._lose("a newer leader holds the epoch")
        return bool(written)

    def _gain(self, epoch: int) -> None:
        self.epoch = epoch
        log.info("replica %s leads the fleet (epoch %d)", self.replica_id, epoch)
        self.changed.set()

    def _lose(self, why: str) -> None:
        log.warning("replica %s no longer leads (epoch %d): %s", self.replica_id, self.epoch,
                    why)
        self.epoch = 0
        self.changed.set()
