"""Writes that count only once replicas have them.

Redis replicates asynchronously: a master that fails over can lose writes it had
acknowledged. With `redis.wait_replicas = N`, a script's writes count as done only
when WAIT, sent on the same connection right after it, says N replicas have them;
otherwise the call fails like any Redis error, and its caller keeps what it wrote
(spend stays in the buffer, a lease is not acted on) and tries again.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError


class NotReplicated(RedisError):
    """WAIT timed out before enough replicas had the writes."""


class Replicated:
    def __init__(self, client: redis.Redis, replicas: int, timeout_ms: int) -> None:
        self.client = client
        self.replicas = replicas
        self.timeout_ms = timeout_ms

    async def call(self, script: AsyncScript, keys: Sequence[str],
                   args: Sequence[Any]) -> Any:
        if not self.replicas:
            return await script(keys=keys, args=args)
        async with self.client.pipeline(transaction=False) as pipe:  # one connection
            await script(keys=keys, args=args, client=pipe)
            pipe.execute_command("WAIT", self.replicas, self.timeout_ms)
            result, acknowledged = await pipe.execute()
        if int(acknowledged) < self.replicas:
            raise NotReplicated(f"{acknowledged} of {self.replicas} replicas confirmed the "
                                f"write within {self.timeout_ms} ms")
        return result
