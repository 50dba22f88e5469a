"""The Redis store: the fleet's shared money, read from a snapshot, written exactly once.

Routing reads `budget_view()`, a snapshot refreshed every `snapshot_interval_seconds`
by one background read, so no request waits on Redis. Each paid request's cost is
one `spend.lua` call keyed by the request id: retried after a timeout it counts
once. While Redis is away, costs wait in memory (and count in this replica's
view) and are written when it returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import msgspec
from redis.exceptions import RedisError

from nexus.budget.month import BudgetView, day_of, month_of
from nexus.budget.records import (
    HELD,
    OVER_FLEET_BUDGET,
    OVER_KEY_BUDGET,
    OVER_TEAM_BUDGET,
    Reservation,
    SpendBreakdown,
    SpendRecord,
)
from nexus.config.schema import RedisConfig
from nexus.core.tasks import Supervisor, stop_if_cancelled, ticks
from nexus.store.base import StoreStatus, TenantRecords
from nexus.store.circuit import Circuit
from nexus.store.connect import close_client, redis_client, redis_where
from nexus.store.errors import StoreError, store_error, store_errors
from nexus.store.keys import Keys
from nexus.store.lua import lua_script
from nexus.store.redis_tenants import RedisTenants
from nexus.store.replication import Replicated
from nexus.tenants.model import KeyRecord, TeamRecord, TenantSpend
from nexus.tenants.rates import RateCheck, RateSubject, RateVerdict

log = logging.getLogger(__name__)
COUNTED_MARKER_SECONDS = 7 * 24 * 3600  # longer than any outage we buffer through
OPERATION_SECONDS = 7 * 24 * 3600  # lifecycle operations' records are kept a week
KEPT_OPERATIONS = 1_000            # and listed, the newest
DEMAND_SECONDS = 31 * 24 * 3600  # hourly request counts per model are kept 31 days
WRITE_BATCH = 128  # spend records per command; records queue while one is in flight
EXPIRE_BATCH = 100  # expired reservations settled per leader round
RETRY_SECONDS = (0.1, 0.25, 0.5, 1.0, 2.0)  # backoff between failed writes


_REFUSALS = {1: HELD, 0: OVER_FLEET_BUDGET, -1: OVER_KEY_BUDGET, -2: OVER_TEAM_BUDGET}


def _limit(micro: int | None) -> int:
    return -1 if micro is None else micro


class RedisStore:
    name = "redis"

    def __init__(self, config: RedisConfig, month: Callable[[], str] = month_of,
                 clock: Callable[[], float] = time.monotonic, replica_id: str = "") -> None:
        self.replica_id = replica_id
        self.config = config
        self.keys = Keys(config.prefix)
        self.client = redis_client(config)
        self._spend = self.client.register_script(lua_script("spend"))
        self._reserve = self.client.register_script(lua_script("reserve"))
        self._expire = self.client.register_script(lua_script("expire_reservations"))
        # a backend's lifecycle claim is a lease like the leader's: the same scripts
        self._release_claim = self.client.register_script(lua_script("lease_release"))
        self._renew_claim = self.client.register_script(lua_script("lease_renew"))
        self.tenants = RedisTenants(self.client, self.keys, config.rate_allowances)
        # Spend counts as written once config.wait_replicas replicas have it.
        self.replicated = Replicated(self.client, config.wait_replicas, config.wait_timeout_ms)
        self._month = month
        self._clock = clock
        self._spent = 0                      # the month's total at the last snapshot
        self._reserved = 0                   # and what reservations held then
        self._snapshot_month = month()
        self._snapshot_at: float | None = None
        self._pending: dict[str, SpendRecord] = {}  # written to Redis not yet confirmed
        self._waiting: dict[str, asyncio.Future[None]] = {}  # commit_spend callers, by id
        self.circuit = Circuit()
        self._pending_total: dict[str, int] = {}     # month -> micro-USD in _pending
        self._demand: dict[tuple[int, str], int] = {}  # (hour, model) -> not yet written
        self._view: BudgetView | None = None         # what budget_view() hands out now
        self._wake = asyncio.Event()
        self._supervisor: Supervisor | None = None
        self.connected = False
        self.last_error = ""

    # -- what routing reads --------------------------------------------------------------
    def budget_view(self) -> BudgetView:
        """The same view object until the snapshot, this replica's costs, the month or
        its staleness change: routing works the budget status out once per view."""
        month = self._month()
        view = self._view
        if view is None or view.month != month or (not view.stale and self._stale()):
            view = self._view = self._build_view(month)
        return view

    def _build_view(self, month: str) -> BudgetView:
        same = month == self._snapshot_month
        spent, reserved = (self._spent, self._reserved) if same else (0, 0)
        return BudgetView(month=month, spent_micro_usd=spent + self._pending_total.get(month, 0),
                          reserved_micro_usd=reserved, stale=self._stale())

    def _stale(self) -> bool:
        age = self.snapshot_age()
        return age is None or age > self.config.stale_after_seconds

    def snapshot_age(self) -> float | None:
        return None if self._snapshot_at is None else self._clock() - self._snapshot_at

    # -- what the forwarder writes -------------------------------------------------------
    def record_spend(self, record: SpendRecord) -> None:
        if (record.cost_micro_usd <= 0 and not record.reserved) \
                or record.request_id in self._pending:
            return
        self._pending[record.request_id] = record
        self._pending_total[record.month] = \
            self._pending_total.get(record.month, 0) + record.cost_micro_usd
        self._view = None
        self._wake.set()

    async def commit_spend(self, record: SpendRecord) -> None:
        """Return once Redis has the cost, or, while it cannot be reached, once the cost
        waits in this replica's buffer. Concurrent callers share one write."""
        self.record_spend(record)
        if record.request_id not in self._pending or self.circuit.open:
            return
        waiter = self._waiting.get(record.request_id)
        if waiter is None:
            waiter = self._waiting[record.request_id] = \
                asyncio.get_running_loop().create_future()
        await asyncio.shield(waiter)

    def _release_waiters(self, request_ids: list[str] | None = None) -> None:
        """Wake commit_spend callers: their records are written (or, on failure, wait in
        the buffer, which is all that can be promised while Redis is away)."""
        ids = list(self._waiting) if request_ids is None else request_ids
        for request_id in ids:
            waiter = self._waiting.pop(request_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def count_request(self, model: str, hour: int) -> None:
        key = (hour, model)
        self._demand[key] = self._demand.get(key, 0) + 1

    async def _write_demand(self) -> None:
        """Add the counted requests to their hours' hashes (with the snapshot's round
        trip, never on a request's path); kept for the next round if Redis fails."""
        counted, self._demand = self._demand, {}
        if not counted:
            return
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                for (hour, model), requests in counted.items():
                    pipe.hincrby(self.keys.demand(hour), model, requests)
                for hour in {hour for hour, _ in counted}:
                    pipe.expire(self.keys.demand(hour), DEMAND_SECONDS)
                await pipe.execute()
        except RedisError as exc:
            for key, requests in counted.items():  # counted again next round, not lost
                self._demand[key] = self._demand.get(key, 0) + requests
            raise self._lost(exc) from exc

    async def demand(self, first_hour: int, last_hour: int) -> dict[int, dict[str, int]]:
        # never more than the hours kept: a careless range is not a million reads
        hours = list(range(max(first_hour, last_hour - DEMAND_SECONDS // 3600),
                           last_hour + 1))
        with store_errors():
            async with self.client.pipeline(transaction=False) as pipe:
                for hour in hours:
                    pipe.hgetall(self.keys.demand(hour))
                found = await pipe.execute()
        return {hour: {str(k): int(v) for k, v in counts.items()}
                for hour, counts in zip(hours, found, strict=True) if counts}

    async def add_backend(self, name: str, record: bytes) -> bool:
        with store_errors():
            return bool(await self.client.hsetnx(self.keys.runtime_backends, name, record))

    async def delete_backend(self, name: str) -> bool:
        with store_errors():
            return bool(await self.client.hdel(self.keys.runtime_backends, name))

    async def runtime_backends(self) -> dict[str, bytes]:
        with store_errors():
            found = await self.client.hgetall(self.keys.runtime_backends)
        return {str(k): v.encode() if isinstance(v, str) else v for k, v in found.items()}

    @property
    def pending(self) -> int:
        """Costs recorded here but not yet confirmed by Redis."""
        return len(self._pending)

    def status(self) -> StoreStatus:
        age = self.snapshot_age()
        return StoreStatus(kind=self.name, connected=self.connected,
                           snapshot_age_seconds=None if age is None else round(age, 3),
                           pending_spend_records=len(self._pending), last_error=self.last_error,
                           circuit_open=self.circuit.open)

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self, supervisor: Supervisor | None = None) -> None:
        self._supervisor = supervisor or Supervisor()
        try:
            await self.refresh()
        except StoreError as exc:
            log.warning("Redis at %s is unreachable (%s): routing starts without a budget "
                        "snapshot and spend is buffered until it returns", self._where(), exc)
        self._supervisor.start("redis-spend", self._write_forever)
        self._supervisor.start("redis-snapshot", self._refresh_forever)
        self._supervisor.start("redis-rate-settle", self.tenants.settle_forever)

    async def close(self, flush_seconds: float = 5.0) -> None:
        if self._supervisor is not None:
            await self._supervisor.stop("redis-spend", "redis-snapshot", "redis-rate-settle")
        with contextlib.suppress(TimeoutError, StoreError):
            async with asyncio.timeout(flush_seconds):
                await self.flush()
                await self._write_demand()
                await self.tenants.give_back()
        self._release_waiters()
        if self._pending:
            lost = sum(r.cost_micro_usd for r in self._pending.values())
            log.error("shutting down with %d cost record(s), %d micro-USD, not written to "
                      "Redis (%s)", len(self._pending), lost, self.last_error)
        with contextlib.suppress(RedisError, OSError):
            await self.tenants.close()
        await close_client(self.client)

    async def sync(self) -> None:
        """Write what is pending and re-read the snapshot (tests, shutdown, CLI)."""
        await self.flush()
        await self._write_demand()
        await self.refresh()

    # -- the two loops -------------------------------------------------------------------
    async def refresh(self) -> None:
        month = self._month()
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.get(self.keys.spend_total(month))  # GETs, not MGET: a cluster's
                pipe.get(self.keys.reserved_total(month))  # pipeline refuses MGET
                self.tenants.snapshot_reads(pipe, month)
                spent, reserved, *tenant_figures = await pipe.execute()
            await self.tenants.apply_snapshot(month, tenant_figures)
        except RedisError as exc:
            raise self._lost(exc) from exc
        self._spent, self._reserved = int(spent or 0), int(reserved or 0)
        self._snapshot_month = month
        self._snapshot_at = self._clock()
        self._view = None
        self._found()

    async def flush(self) -> None:
        """Write every pending record; raise StoreError if Redis fails meanwhile (the
        records stay pending, and their commit_spend callers are let go)."""
        try:
            while self._pending:
                await self._write_pending()
        except StoreError:
            self._release_waiters()
            raise

    async def _write_pending(self) -> None:
        batch = list(self._pending.values())[:WRITE_BATCH]
        try:
            results = await self._write_batch(batch)
        except RedisError as exc:
            raise self._lost(exc) from exc
        for record, result in zip(batch, results, strict=True):
            if isinstance(result, RedisError):
                raise self._lost(result)
            self._confirmed(record)
        self._release_waiters([record.request_id for record in batch])
        self._found()

    async def _write_batch(self, batch: list[SpendRecord]) -> list[object]:
        """One command for the whole batch: spend.lua counts each record once. A Redis
        that restarted without its script cache answers NOSCRIPT: redis-py loads the
        script and sends it again (records that did land are not counted twice)."""
        keys: list[str] = []
        args: list[str | int] = [COUNTED_MARKER_SECONDS]
        for record in batch:
            keys += self._spend_keys(record)
            args += [record.request_id, record.cost_micro_usd, record.backend, record.model,
                     record.key, record.team, record.day]
        results = await self.replicated.call(self._spend, keys, args)
        return list(results)

    def _spend_keys(self, record: SpendRecord) -> list[str]:
        keys = self.keys
        month = record.month
        return [keys.spend_counted(record.request_id), keys.spend_total(month),
                keys.spend_by_backend(month), keys.spend_by_model(month),
                keys.reserved_total(month), keys.reservations(month),
                keys.reservation_expiry(month), *self._tenant_ledger(month),
                keys.spend_by_day(month)]

    def _tenant_ledger(self, month: str) -> list[str]:
        keys = self.keys
        return [keys.spend_by(month, "key"), keys.spend_by(month, "team"),
                keys.reserved_by(month, "key"), keys.reserved_by(month, "team")]

    # -- strict budgets ------------------------------------------------------------------
    async def reserve(self, reservation: Reservation) -> bool:
        return await self.hold(reservation) == HELD

    async def hold(self, reservation: Reservation) -> str:
        self.circuit.check()  # a frozen Redis must not hold the request for its timeout
        try:
            return await self._reserve_now(reservation)
        except RedisError as exc:
            raise self._lost(exc) from exc

    async def _reserve_now(self, reservation: Reservation) -> str:
        keys, month = self.keys, reservation.month
        details = msgspec.json.encode({
            "micro_usd": str(reservation.estimate_micro_usd), "backend": reservation.backend,
            "model": reservation.model, "replica": self.replica_id, "key": reservation.key,
            "team": reservation.team}).decode()
        expires_ms = int((time.time() + reservation.ttl_seconds) * 1000)
        held = int(await self._reserve(
            keys=[keys.spend_total(month), keys.reserved_total(month),
                  keys.reservations(month), keys.reservation_expiry(month),
                  *self._tenant_ledger(month)],
            args=[reservation.request_id, reservation.estimate_micro_usd,
                  _limit(reservation.limit_micro_usd), expires_ms, details,
                  reservation.key, _limit(reservation.key_limit_micro_usd),
                  reservation.team, _limit(reservation.team_limit_micro_usd)]))
        if held == 1 and month == self._snapshot_month:
            self._reserved += reservation.estimate_micro_usd  # seen at once by this replica
            self._view = None
            self.tenants.held(reservation)
        return _REFUSALS[held]

    # -- tenants -------------------------------------------------------------------------
    def tenant_records(self) -> TenantRecords:
        return self.tenants.records

    def tenant_spend(self) -> TenantSpend:
        return self.tenants.spend

    async def save_key(self, record: KeyRecord) -> None:
        with store_errors():
            await self.tenants.save("keys", record.name, record)

    async def save_team(self, record: TeamRecord) -> None:
        with store_errors():
            await self.tenants.save("teams", record.name, record)

    async def delete_key(self, name: str) -> bool:
        with store_errors():
            return await self.tenants.delete("keys", name)

    async def delete_team(self, name: str) -> bool:
        with store_errors():
            return await self.tenants.delete("teams", name)

    async def save_response(self, response_id: str, record: bytes, ttl_seconds: int) -> None:
        self.circuit.check()
        with store_errors():
            await self.client.set(self.keys.response(response_id), record, ex=ttl_seconds)

    async def load_response(self, response_id: str) -> bytes | None:
        self.circuit.check()
        with store_errors():
            found = await self.client.get(self.keys.response(response_id))
        return found.encode() if isinstance(found, str) else found

    async def delete_response(self, response_id: str) -> bool:
        with store_errors():
            return bool(await self.client.delete(self.keys.response(response_id)))

    async def claim_backend(self, backend: str, token: str, ttl_ms: int) -> str | None:
        key = self.keys.lifecycle_claim(backend)
        with store_errors():
            if await self.client.set(key, token, nx=True, px=ttl_ms):
                return None
            holder = await self.client.get(key)
        holder = holder.decode() if isinstance(holder, bytes) else holder
        return None if holder == token else (holder or "?")

    async def renew_claim(self, backend: str, token: str, ttl_ms: int) -> bool:
        with store_errors():
            return bool(await self._renew_claim(keys=[self.keys.lifecycle_claim(backend)],
                                                args=[token, ttl_ms]))

    async def release_claim(self, backend: str, token: str) -> None:
        with store_errors():
            await self._release_claim(keys=[self.keys.lifecycle_claim(backend)], args=[token])

    async def save_operation(self, operation_id: str, record: bytes, started: float) -> None:
        with store_errors():
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.set(self.keys.lifecycle_operation(operation_id), record,
                         ex=OPERATION_SECONDS)
                pipe.zadd(self.keys.lifecycle_operations, {operation_id: started})
                pipe.zremrangebyrank(self.keys.lifecycle_operations, 0, -KEPT_OPERATIONS - 1)
                await pipe.execute()

    async def load_operation(self, operation_id: str) -> bytes | None:
        with store_errors():
            found = await self.client.get(self.keys.lifecycle_operation(operation_id))
        return found.encode() if isinstance(found, str) else found

    async def recent_operations(self, limit: int) -> list[bytes]:
        with store_errors():
            ids = await self.client.zrevrange(self.keys.lifecycle_operations, 0, limit - 1)
            if not ids:
                return []
            records = await self.client.mget(
                [self.keys.lifecycle_operation(i.decode() if isinstance(i, bytes) else str(i))
                 for i in ids])
        return [r.encode() if isinstance(r, str) else r for r in records if r is not None]

    async def rate_check(self, check: RateCheck) -> RateVerdict:
        verdict = self.tenants.take(check)  # an allowance's slots are counted already
        if verdict is not None:
            return verdict
        self.circuit.check()
        try:
            verdict = await self.tenants.rate_check(check)
        except RedisError as exc:
            raise self._lost(exc) from exc
        self._found()
        return verdict

    def settle_rate(self, check: RateCheck, actual_tokens: int) -> None:
        self.tenants.settle(check, actual_tokens)

    async def rate_usage(self, subject: RateSubject) -> tuple[int, int]:
        with store_errors():
            return await self.tenants.rate_usage(subject)

    async def release(self, request_id: str, month: str) -> None:
        record = SpendRecord(request_id=request_id, month=month, backend="", model="",
                             cost_micro_usd=0, reserved=True)
        if self.circuit.open:  # written with the next batch, or expired by the leader
            self.record_spend(record)
            return
        try:
            await self._write_batch([record])
        except RedisError as exc:
            raise self._lost(exc) from exc

    async def expire_reservations(self, month: str, epoch: int) -> int:
        """Leader only: count the estimate of reservations past their expiry as spent.
        `epoch` is the one the caller leads in (0: it does not lead); Redis refuses a
        stale one."""
        with store_errors():
            return await self._expire_now(month, epoch)

    async def _expire_now(self, month: str, epoch: int) -> int:
        keys = self.keys
        now_ms = int(time.time() * 1000)
        ids = [str(i) for i in await self.client.zrangebyscore(
            keys.reservation_expiry(month), "-inf", now_ms, start=0, num=EXPIRE_BATCH)]
        if not ids or epoch <= 0:
            return 0
        counted = int(await self._expire(
            keys=[keys.leader_epoch, keys.reservation_expiry(month), keys.reservations(month),
                  keys.reserved_total(month), keys.spend_total(month),
                  keys.spend_by_backend(month), keys.spend_by_model(month),
                  *self._tenant_ledger(month), keys.spend_by_day(month),
                  *(keys.spend_counted(i) for i in ids)],
            args=[epoch, now_ms, COUNTED_MARKER_SECONDS, day_of(now_ms / 1000),
                  *ids]))
        return max(0, counted)

    def _confirmed(self, record: SpendRecord) -> None:
        """Written: the cost moves from pending into the snapshot's total, so the view
        keeps counting it until the next snapshot reads it from Redis (which may then
        count it twice for one interval: over, never under)."""
        if self._pending.pop(record.request_id, None) is not None:
            left = self._pending_total[record.month] - record.cost_micro_usd
            if left:
                self._pending_total[record.month] = left
            else:
                del self._pending_total[record.month]
            if record.month == self._snapshot_month:
                self._spent += record.cost_micro_usd
            self._view = None

    async def _write_forever(self) -> None:
        failures = 0
        while True:
            stop_if_cancelled()
            await self._wake.wait()
            self._wake.clear()
            try:
                await self.flush()
                failures = 0
            except StoreError:
                stop_if_cancelled()
                await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)])
                failures += 1
                self._wake.set()  # try again: nothing pending is ever dropped

    async def _refresh_forever(self) -> None:
        async for _ in ticks(self.config.snapshot_interval_seconds):
            stop_if_cancelled()
            try:
                await self.refresh()
                await self._write_demand()
            except StoreError:
                stop_if_cancelled()
                continue
            if self._pending:
                self._wake.set()  # Redis is back: write what waited

    # -- breakdown for operators ---------------------------------------------------------
    async def breakdown(self, month: str) -> SpendBreakdown:
        with store_errors():
            return await self._breakdown_now(month)

    async def _breakdown_now(self, month: str) -> SpendBreakdown:
        keys = self.keys
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.get(keys.spend_total(month))
            pipe.hgetall(keys.spend_by_backend(month))
            pipe.hgetall(keys.spend_by_model(month))
            pipe.get(keys.reserved_total(month))
            pipe.hgetall(keys.spend_by(month, "key"))
            pipe.hgetall(keys.spend_by(month, "team"))
            pipe.hgetall(keys.spend_by_day(month))
            total, by_backend, by_model, reserved, by_key, by_team, by_day = \
                await pipe.execute()
        return SpendBreakdown(month=month, total_micro_usd=int(total or 0),
                              reserved_micro_usd=int(reserved or 0),
                              by_backend={k: int(v) for k, v in by_backend.items()},
                              by_model={k: int(v) for k, v in by_model.items()},
                              by_key={k: int(v) for k, v in by_key.items()},
                              by_team={k: int(v) for k, v in by_team.items()},
                              by_day={k: int(v) for k, v in sorted(by_day.items())})

    # -- connection state ----------------------------------------------------------------
    def _lost(self, exc: RedisError) -> StoreError:
        """Note the failure (the circuit counts it) and return it as a StoreError."""
        error = store_error(exc)
        if self.connected:
            log.warning("lost Redis at %s: %s; routing goes on from the last snapshot",
                        self._where(), error)
        self.connected, self.last_error = False, str(error)
        self.circuit.failed()
        return error

    def _found(self) -> None:
        if not self.connected:
            log.info("connected to Redis at %s", self._where())
        self.connected, self.last_error = True, ""
        self.circuit.succeeded()

    def _where(self) -> str:
        return redis_where(self.config)


