"""The Redis store's tenant side: key and team records, their spend, rate limits.

Records live in two hashes with a version counter beside them; the snapshot reads
the version with the budget and re-reads the records only when it moved, so a
revocation or a new limit reaches every replica within one snapshot period while a
quiet fleet reads three integers. Rate limits are one `rate.lua` call per limited
request; token estimates are settled afterwards in batches (`rate_settle.lua`).
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import redis.asyncio as redis
from redis.exceptions import RedisError

from nexus.store.base import Reservation, TenantRecords
from nexus.store.keys import Keys
from nexus.store.lua import lua_script
from nexus.store.script_line import ScriptLine
from nexus.tenants.model import KeyRecord, TeamRecord, TenantSpend
from nexus.tenants.rates import WINDOW_MS, Quota, RateCheck, RateSubject, RateVerdict

SETTLE_BATCH = 512
# Settlements wait this long for company (a token estimate counts meanwhile: over,
# never under); a call per request would cost more than the check itself.
SETTLE_GATHER_SECONDS = 0.05
CHECK_BATCH = 256
KEY_NAME_CACHE = 10_000
_encode = msgspec.json.Encoder().encode
_decode_answers = msgspec.json.Decoder(list[list[Any]]).decode
_key_decoder = msgspec.json.Decoder(KeyRecord)
_team_decoder = msgspec.json.Decoder(TeamRecord)


class RedisTenants:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.records = TenantRecords()
        self.spend = TenantSpend()
        self._rate = ScriptLine(client, lua_script("rate"))
        self._settle = ScriptLine(client, lua_script("rate_settle"))
        self._settles: list[tuple[RateCheck, int]] = []
        self._checks: list[tuple[RateCheck, asyncio.Future[RateVerdict]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._key_names: dict[tuple[str, str], tuple[str, str]] = {}  # subject's two keys
        self.wake = asyncio.Event()

    # -- the snapshot --------------------------------------------------------------------
    def snapshot_reads(self, pipe: Any, month: str) -> None:
        """Queue this side's snapshot reads on the store's refresh pipeline."""
        pipe.get(self.keys.tenants_version)
        for kind in ("key", "team"):
            pipe.hgetall(self.keys.spend_by(month, kind))
            pipe.hgetall(self.keys.reserved_by(month, kind))

    async def apply_snapshot(self, month: str, results: list[Any]) -> None:
        version, spent_keys, held_keys, spent_teams, held_teams = results
        self.spend = TenantSpend(month=month, spent_by_key=_ints(spent_keys),
                                 reserved_by_key=_ints(held_keys),
                                 spent_by_team=_ints(spent_teams),
                                 reserved_by_team=_ints(held_teams))
        if int(version or 0) != self.records.version:
            await self.reload()

    async def reload(self) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.get(self.keys.tenants_version)
            pipe.hgetall(self.keys.tenant_records("keys"))
            pipe.hgetall(self.keys.tenant_records("teams"))
            version, keys, teams = await pipe.execute()
        self.records = TenantRecords(
            version=int(version or 0),
            keys={str(n): _key_decoder.decode(raw) for n, raw in keys.items()},
            teams={str(n): _team_decoder.decode(raw) for n, raw in teams.items()})

    def held(self, reservation: Reservation) -> None:
        """A reservation this replica just made counts in its view at once."""
        spend = self.spend
        if reservation.month != spend.month:
            return
        for name, held in ((reservation.key, spend.reserved_by_key),
                           (reservation.team, spend.reserved_by_team)):
            if name:
                held[name] = held.get(name, 0) + reservation.estimate_micro_usd

    async def close(self) -> None:
        await self._rate.close()
        await self._settle.close()

    # -- records -------------------------------------------------------------------------
    async def save(self, kind: str, name: str, record: KeyRecord | TeamRecord) -> None:
        await self._change(kind, lambda pipe: pipe.hset(
            self.keys.tenant_records(kind), name, msgspec.json.encode(record).decode()))

    async def delete(self, kind: str, name: str) -> bool:
        found = name in (self.records.keys if kind == "keys" else self.records.teams)
        await self._change(kind, lambda pipe: pipe.hdel(self.keys.tenant_records(kind), name))
        return found

    async def _change(self, kind: str, write: Any) -> None:
        async with self.client.pipeline(transaction=True) as pipe:
            write(pipe)
            pipe.incr(self.keys.tenants_version)
            await pipe.execute()
        await self.reload()  # this replica sees its own change at once

    # -- rate limits ---------------------------------------------------------------------
    async def rate_check(self, check: RateCheck) -> RateVerdict:
        """Checks that arrive while a call is out go together in the next one: one
        command for many requests under load, and a lone request waits for no one."""
        waiter: asyncio.Future[RateVerdict] = asyncio.get_running_loop().create_future()
        self._checks.append((check, waiter))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_checks())
        return await waiter

    async def _send_checks(self) -> None:
        while self._checks:
            batch, self._checks = self._checks[:CHECK_BATCH], self._checks[CHECK_BATCH:]
            try:
                verdicts = await self._check_batch([check for check, _ in batch])
            except Exception as exc:  # every waiter hears of it, whatever it is
                for _, waiter in batch:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for (_, waiter), verdict in zip(batch, verdicts, strict=True):
                if not waiter.done():
                    waiter.set_result(verdict)

    async def _check_batch(self, checks: list[RateCheck]) -> list[RateVerdict]:
        """One call for the batch on one server; on a cluster, one call per hash slot
        among the batch's tenants (each call's keys must share one), sent together. The
        verdicts come back in the batch's order."""
        groups = [checks] if self._rate.one_node else by_slot(checks)
        if len(groups) == 1:  # the usual batch: one server, or one tenant's slot
            return await self._check_group(checks)
        answered = await asyncio.gather(*(self._check_group(group) for group in groups))
        verdicts: dict[str, RateVerdict] = {}
        for group, answers in zip(groups, answered, strict=True):
            verdicts.update((c.request_id, v) for c, v in zip(group, answers, strict=True))
        return [verdicts[check.request_id] for check in checks]

    async def _check_group(self, checks: list[RateCheck]) -> list[RateVerdict]:
        keys, at = self._batch_keys(checks)
        sent = _encode([[c.request_id, c.tokens, [[at[s.name], s.rpm, s.tpm]
                                                  for s in c.subjects]] for c in checks])
        answers = _decode_answers(await self._rate(keys=keys, args=[WINDOW_MS, sent]))
        return [_verdict(check, answer) for check, answer in zip(checks, answers, strict=True)]

    def _batch_keys(self, checks: list[RateCheck]) -> tuple[list[str], dict[str, int]]:
        """Each subject's two keys once (the batch's checks of one key share them), and
        where in KEYS (1-based, as Lua counts) each subject's pair starts."""
        keys: list[str] = []
        at: dict[str, int] = {}
        for check in checks:
            for subject in check.subjects:
                if subject.name not in at:
                    at[subject.name] = len(keys) + 1
                    keys += self._rate_keys(subject)
        return keys, at

    def _rate_keys(self, subject: RateSubject) -> tuple[str, str]:
        found = self._key_names.get((subject.name, subject.slot))
        if found is None:
            if len(self._key_names) > KEY_NAME_CACHE:
                self._key_names.clear()
            found = self._key_names[(subject.name, subject.slot)] = (
                self.keys.rate_requests(subject.name, subject.owner),
                self.keys.rate_tokens(subject.name, subject.owner))
        return found

    def settle(self, check: RateCheck, actual_tokens: int) -> None:
        if actual_tokens != check.tokens:
            self._settles.append((check, actual_tokens))
            self.wake.set()

    async def settle_forever(self) -> None:
        """Write queued settlements, a batch a call; one that fails is dropped (the
        estimate then counts until it leaves the window: over, never under)."""
        while True:
            await self.wake.wait()
            await asyncio.sleep(SETTLE_GATHER_SECONDS)  # let a batch gather: one call
            self.wake.clear()
            while self._settles:
                batch, self._settles = self._settles[:SETTLE_BATCH], \
                    self._settles[SETTLE_BATCH:]
                await self._settle_batch(batch)

    async def _settle_batch(self, batch: list[tuple[RateCheck, int]]) -> None:
        """One call for the batch on one server (settle_forever sends one at a time, as
        the script line asks); on a cluster, one call per hash slot, sent together."""
        if self._settle.one_node:
            await self._settle_group(batch)
            return
        actual = {check.request_id: tokens for check, tokens in batch}
        await asyncio.gather(*(self._settle_group([(c, actual[c.request_id]) for c in group])
                               for group in by_slot([check for check, _ in batch])))

    async def _settle_group(self, batch: list[tuple[RateCheck, int]]) -> None:
        keys, at = self._batch_keys([check for check, _ in batch])
        entries = [[check.request_id, check.tokens, actual, [at[s.name] for s in check.subjects]]
                   for check, actual in batch]
        try:
            await self._settle(keys=keys, args=[_encode(entries)])
        except (RedisError, OSError):
            return

    async def rate_usage(self, subject: RateSubject) -> tuple[int, int]:
        seconds, micros = await self.client.time()
        now = seconds * 1000 + micros // 1000
        members = await self.client.zrangebyscore(
            self.keys.rate_requests(subject.name, subject.owner), now - WINDOW_MS, "+inf")
        return len(members), sum(int(str(m).rsplit(":", 1)[1]) for m in members)


def by_slot(checks: list[RateCheck]) -> list[list[RateCheck]]:
    """The checks grouped by the hash slot their counters live in (a check's subjects
    all share one: its key's team, or its key)."""
    groups: dict[str, list[RateCheck]] = {}
    for check in checks:
        groups.setdefault(check.subjects[0].owner, []).append(check)
    return list(groups.values())


def _verdict(check: RateCheck, answer: list[Any]) -> RateVerdict:
    if int(answer[0]) == 0:
        return RateVerdict(False, refused_by=check.subjects[int(answer[1]) - 1].name,
                           refused_limit=str(answer[2]), retry_after_ms=int(answer[3]))
    figures = [int(x) for x in answer[1:]]
    return RateVerdict(True, tuple(
        Quota(subject, figures[3 * i], figures[3 * i + 1], figures[3 * i + 2])
        for i, subject in enumerate(check.subjects)))


def _ints(fields: dict[Any, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in fields.items() if int(v)}
