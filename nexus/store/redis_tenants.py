"""The Redis store's tenant side: key and team records, their spend, rate limits.

Records live in two hashes with a version counter beside them; the snapshot reads
the version with the budget and re-reads the records only when it moved, so a
revocation or a new limit reaches every replica within one snapshot period while a
quiet fleet reads three integers. Rate limits are one `rate.lua` call per batch of
limited requests, and for a busy key far from its limits, an allowance (see
`nexus.tenants.allowance`) admits most of its requests with no call at all; token
estimates and allowances' unused parts are settled afterwards in batches
(the same script, with no checks).
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import msgspec
import redis.asyncio as redis
from redis.exceptions import RedisError

from nexus.budget.records import Reservation
from nexus.store.base import TenantRecords
from nexus.store.keys import Keys
from nexus.store.lua import lua_script
from nexus.store.script_line import ScriptLine
from nexus.tenants.allowance import MAX_PERIOD_SECONDS, Allowance, Allowances, AllowanceWrite, Ask
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
MAX_PERIOD_MS = int(MAX_PERIOD_SECONDS * 1000)  # how far ahead blocks may be scored
_key_decoder = msgspec.json.Decoder(KeyRecord)
_team_decoder = msgspec.json.Decoder(TeamRecord)


class RedisTenants:
    def __init__(self, client: redis.Redis, keys: Keys, allowances: bool = True) -> None:
        self.client = client
        self.keys = keys
        self.records = TenantRecords()
        self.spend = TenantSpend()
        self._rate = ScriptLine(client, lua_script("rate"))
        self._settle = ScriptLine(client, lua_script("rate"))  # settlements: no checks
        self._settles: list[Settlement] = []
        self._checks: list[tuple[RateCheck, Ask | None, asyncio.Future[RateVerdict]]] = []
        self._sender: asyncio.Task[None] | None = None
        self._key_names: dict[tuple[str, str], tuple[str, str]] = {}  # subject's two keys
        self.wake = asyncio.Event()
        self.allowances = Allowances(wake=self.wake.set, enabled=allowances)

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

    async def give_back(self) -> None:
        """Before the replica stops: open allowances' unused parts, and what is queued."""
        self.allowances.close_all()
        await self.settle_now()

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
    def take(self, check: RateCheck) -> RateVerdict | None:
        """Admitted from this key's allowance with no call, or None."""
        return self.allowances.take(check)

    async def rate_check(self, check: RateCheck) -> RateVerdict:
        """For a check `take` did not admit. Checks that arrive while a call is out go
        together in the next one: one command for many requests under load, and a lone
        request waits for no one. While an allowance is asked for, its key's requests
        wait for the answer (the block is theirs) rather than each going to Redis."""
        pending = self.allowances.pending(check)
        if pending is not None:
            await pending.answered
            if pending.error is not None:  # as it would have for this check
                raise pending.error
            verdict = self.allowances.take(check, arrival=False)
            if verdict is not None:
                return verdict
        ask = self.allowances.ask(check)
        waiter: asyncio.Future[RateVerdict] = asyncio.get_running_loop().create_future()
        self._checks.append((check, ask, waiter))
        if self._sender is None or self._sender.done():
            self._sender = asyncio.create_task(self._send_checks())
        return await waiter

    async def _send_checks(self) -> None:
        while self._checks:
            batch, self._checks = self._checks[:CHECK_BATCH], self._checks[CHECK_BATCH:]
            checks = [(check, ask) for check, ask, _ in batch]
            try:
                verdicts = await self._check_batch(checks)
            except Exception as exc:  # every waiter hears of it, whatever it is
                for check, ask, waiter in batch:
                    if ask is not None:
                        self.allowances.answered(check, ask, None, exc)
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            for (_, _, waiter), verdict in zip(batch, verdicts, strict=True):
                if not waiter.done():
                    waiter.set_result(verdict)
        if self.allowances.has_writes:  # closed since the last call: the writer sends them
            self.wake.set()

    async def _check_batch(self, checks: list[tuple[RateCheck, Ask | None]]) -> \
            list[RateVerdict]:
        """One call for the batch on one server; on a cluster, one call per hash slot
        among the batch's tenants (each call's keys must share one), sent together. The
        verdicts come back in the batch's order. Closed allowances give back their
        unused part in the same call, ahead of the checks they would otherwise refuse."""
        returns = [_allowance_settlement(w) for w in self.allowances.writes()]
        if self._rate.one_node:
            return await self._check_group(checks, returns)
        groups, returned = by_slot(checks), by_slot(returns)
        slots = {group[0][0].subjects[0].owner for group in groups}
        for back in returned:  # no check of theirs in this batch: the writer's
            if back[0][0].subjects[0].owner not in slots:
                self._settles += back
                self.wake.set()
        along = {back[0][0].subjects[0].owner: back for back in returned}
        answered = await asyncio.gather(*(
            self._check_group(group, along.get(group[0][0].subjects[0].owner, []))
            for group in groups))
        verdicts: dict[str, RateVerdict] = {}
        for group, answers in zip(groups, answered, strict=True):
            verdicts.update((c.request_id, v) for (c, _), v in zip(group, answers, strict=True))
        return [verdicts[check.request_id] for check, _ in checks]

    async def _check_group(self, checks: list[tuple[RateCheck, Ask | None]],
                           settlements: list[Settlement]) -> list[RateVerdict]:
        keys, at = self._batch_keys([check for check, _ in checks] +
                                    [check for check, _, _ in settlements])
        sent = _encode([_check_entry(check, ask, at) for check, ask in checks])
        answers = _decode_answers(await self._rate(keys=keys, args=[
            WINDOW_MS, sent, MAX_PERIOD_MS, _encode(_settle_entries(settlements, at))]))
        verdicts = []
        for (check, ask), answer in zip(checks, answers, strict=True):
            verdict = _verdict(check, answer)
            if ask is not None:
                granted = verdict.allowed and int(answer[1]) == 1
                allowance = self.allowances.answered(check, ask, verdict if granted else None)
                if allowance is not None:
                    asyncio.get_running_loop().call_later(
                        ask.period, self.allowances.expire, allowance)
            verdicts.append(verdict)
        return verdicts

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
        if check.allowance is not None:  # its block carries it: changed once it closes
            self.allowances.settle(check, actual_tokens)
        elif actual_tokens != check.tokens:
            self._settles.append((check, actual_tokens, None))
            self.wake.set()

    async def settle_forever(self) -> None:
        """Write queued settlements and closed allowances' changes, a batch a call; one
        that fails is dropped (the estimate, or the unused block, then counts until it
        leaves the window: over, never under)."""
        while True:
            await self.wake.wait()
            await asyncio.sleep(SETTLE_GATHER_SECONDS)  # let a batch gather: one call
            self.wake.clear()
            await self.settle_now()

    async def settle_now(self) -> None:
        """Send what is queued now (the writer's round; tests call it to skip the wait).
        Closed allowances go with the next checks instead while checks are flowing."""
        if not self._checks and (self._sender is None or self._sender.done()):
            self._settles += [_allowance_settlement(w) for w in self.allowances.writes()]
        while self._settles:
            batch, self._settles = self._settles[:SETTLE_BATCH], self._settles[SETTLE_BATCH:]
            await self._settle_batch(batch)

    async def _settle_batch(self, batch: list[Settlement]) -> None:
        """One call for the batch on one server (settle_forever sends one at a time, as
        the script line asks); on a cluster, one call per hash slot, sent together."""
        if self._settle.one_node:
            await self._settle_group(batch)
            return
        await asyncio.gather(*(self._settle_group(group) for group in by_slot(batch)))

    async def _settle_group(self, batch: list[Settlement]) -> None:
        keys, at = self._batch_keys([check for check, _, _ in batch])
        try:
            await self._settle(keys=keys, args=[WINDOW_MS, "[]", MAX_PERIOD_MS,
                                                _encode(_settle_entries(batch, at))])
        except (RedisError, OSError):
            return

    async def rate_usage(self, subject: RateSubject) -> tuple[int, int]:
        seconds, micros = await self.client.time()
        now = seconds * 1000 + micros // 1000
        members = await self.client.zrangebyscore(
            self.keys.rate_requests(subject.name, subject.owner), now - WINDOW_MS, "+inf")
        return len(members), sum(int(str(m).rsplit(":", 1)[1]) for m in members)


Settlement = tuple[RateCheck, int, "tuple[str, int, int] | None"]  # with unused slots
Batched = TypeVar("Batched", Settlement, tuple[RateCheck, "Ask | None"])


def by_slot(items: list[Batched]) -> list[list[Batched]]:
    """Checks or settlements grouped by the hash slot their counters live in (a
    check's subjects all share one: its key's team, or its key)."""
    groups: dict[str, list[Batched]] = {}
    for item in items:
        groups.setdefault(item[0].subjects[0].owner, []).append(item)
    return list(groups.values())


def _check_entry(check: RateCheck, ask: Ask | None, at: dict[str, int]) -> list[Any]:
    limits = [[at[s.name], s.rpm, s.tpm] for s in check.subjects]
    if ask is None:
        return [check.request_id, check.tokens, limits]
    return [check.request_id, check.tokens, limits, ask.slots, ask.tokens,
            int(ask.period * 1000)]


def _settle_entries(settlements: list[Settlement], at: dict[str, int]) -> list[list[Any]]:
    return [[check.request_id, check.tokens, actual, [at[s.name] for s in check.subjects],
             *(unused or ())] for check, actual, unused in settlements]


def _allowance_settlement(write: AllowanceWrite) -> Settlement:
    """An allowance's change as a settlement (rate.lua's ARGV[4]): its slot 0 entry's tokens, and
    its unused slots."""
    allowance: Allowance = write.allowance
    unused = (allowance.lease_id, write.drop_from, write.drop_to) \
        if write.drop_from < write.drop_to else None
    return (RateCheck(f"{allowance.lease_id}.0", write.recorded, allowance.subjects),
            write.tokens, unused)


def _verdict(check: RateCheck, answer: list[Any]) -> RateVerdict:
    if int(answer[0]) == 0:
        subject = check.subjects[int(answer[1]) - 1]
        wait = int(answer[3])
        standing = (Quota(subject, int(answer[4]), int(answer[5]), wait),) \
            if len(answer) >= 6 else ()
        return RateVerdict(False, standing, refused_by=subject.name,
                           refused_limit=str(answer[2]), retry_after_ms=wait)
    figures = [int(x) for x in answer[2:]]  # after the allowance's flag
    return RateVerdict(True, tuple(
        Quota(subject, figures[3 * i], figures[3 * i + 1], figures[3 * i + 2])
        for i, subject in enumerate(check.subjects)))


def _ints(fields: dict[Any, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in fields.items() if int(v)}
