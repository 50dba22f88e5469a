"""Model placement: load, unload and migrate operations, one at a time per backend,
fleet-wide, with their state in the store so any replica answers for them.

An operation claims its backend(s) in the store (a lease its replica renews while it
works, so a replica that dies lets go within `operation_timeout_seconds`); a second
operation on a claimed backend is refused (409). Its record (state, progress, error)
is written as it goes; a `running` record nobody has renewed for the timeout reads as
failed. While it runs, the backend's model is in transition: every replica's
Lifecycle stage keeps requests away (this replica at once, the others from their
next sync, off the request path), and the moment a load is done the model is
routable here, and everywhere at the next sync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from typing import Any, Literal

import msgspec

from nexus.backends.backend import Backend
from nexus.backends.lifecycle import Kind, LifecycleError, ModelOps, Unsupported
from nexus.backends.registry import Registry
from nexus.backends.transition import Transition
from nexus.config.schema import LifecycleConfig
from nexus.core.errors import BadRequest, Conflict, NotFound, NotImplementedHere
from nexus.core.tasks import stop_if_cancelled
from nexus.store.base import Placements
from nexus.store.errors import StoreError

log = logging.getLogger(__name__)
State = Literal["running", "done", "failed"]
LISTED = 50  # operations GET /v1/models/operations shows


class Operation(msgspec.Struct, kw_only=True):
    id: str
    kind: Kind
    model: str
    backends: list[str]            # [backend] for load/unload; [from, to] for migrate
    path: str | None = None        # a vLLM LoRA adapter's path
    state: State = "running"
    progress: float | None = None
    error: str | None = None
    started_at: float
    ended_at: float | None = None
    heartbeat_at: float
    replica: str = ""
    load_seconds: float | None = None  # how long the server took to load the model

    def stale(self, now: float, timeout: float) -> bool:
        return self.state == "running" and now - self.heartbeat_at > timeout

    def shown(self, now: float, timeout: float) -> dict[str, Any]:
        """The API's shape; a running operation nobody renewed reads as failed."""
        where: dict[str, Any] = {"from": self.backends[0], "to": self.backends[1]} \
            if self.kind == "migrate" else {"backend": self.backends[0]}
        state, error, ended = self.state, self.error, self.ended_at
        if self.stale(now, timeout):
            state, ended = "failed", self.heartbeat_at + timeout
            error = (f"timed out: no word from replica {self.replica} for {timeout:g} s "
                     "(it may have stopped)")
        return {"id": self.id, "kind": self.kind, "model": self.model, **where,
                "state": state, "progress": self.progress, "error": error,
                "started_at": self.started_at, "ended_at": ended, "replica": self.replica}


_decode = msgspec.json.Decoder(Operation).decode


class Placement:
    def __init__(self, store: Placements, registry: Registry, replica_id: str,
                 config: LifecycleConfig) -> None:
        self.store = store
        self.registry = registry
        self.replica_id = replica_id
        self.config = config
        self.ops: ModelOps | None = None  # set once the replica has its HTTP session
        self._running: dict[str, asyncio.Task[None]] = {}
        self._applied: set[str] = set()  # finished operations whose outcome is in place here
        # What finished before this replica started, its first health check knows better.
        self._started_at = time.time()

    @property
    def timeout(self) -> float:
        return self.config.operation_timeout_seconds

    # -- starting ------------------------------------------------------------------------
    async def start(self, kind: Kind, model: str, names: list[str],
                    path: str | None = None) -> dict[str, Any]:
        backends = [self._backend(name) for name in names]
        for backend in backends:
            try:
                ModelOps.check(backend, kind)
            except Unsupported as exc:
                raise NotImplementedHere(str(exc), param="backend") from None
        if kind in ("unload", "migrate") and model not in backends[0].models:
            raise NotFound(f"backend '{backends[0].name}' does not serve '{model}'",
                           param="model", code="model_not_found")
        if kind == "migrate" and backends[0] is backends[1]:
            raise BadRequest("a migration needs two different backends", param="to")
        now = time.time()
        operation = Operation(id=f"op_{secrets.token_hex(8)}", kind=kind, model=model,
                              backends=names, path=path, started_at=now, heartbeat_at=now,
                              replica=self.replica_id)
        await self._claim(operation)
        await self._save(operation)
        self._running[operation.id] = asyncio.get_running_loop().create_task(
            self._run(operation, backends))
        return operation.shown(now, self.timeout)

    def _backend(self, name: str) -> Backend:
        backend = self.registry.get(name)
        if backend is None:
            raise NotFound(f"no backend named '{name}'", param="backend",
                           code="backend_not_found")
        return backend

    async def _claim(self, operation: Operation) -> None:
        taken: list[str] = []
        ttl = int(self.timeout * 1000)
        for name in operation.backends:
            holder = await self.store.claim_backend(name, operation.id, ttl)
            if holder is not None:
                for done in taken:
                    await self.store.release_claim(done, operation.id)
                raise Conflict(f"backend '{name}' has an operation running ({holder}); "
                               "one at a time per backend", param="backend")
            taken.append(name)

    # -- running -------------------------------------------------------------------------
    async def _run(self, operation: Operation, backends: list[Backend]) -> None:
        beat = asyncio.get_running_loop().create_task(self._heartbeat(operation))
        try:
            await self._steps(operation, backends)
            operation.state, operation.progress = "done", 1.0
        except (LifecycleError, Unsupported, TimeoutError, OSError) as exc:
            operation.state, operation.error = "failed", str(exc) or exc.__class__.__name__
            log.warning("%s %s of %s failed: %s", operation.id, operation.kind,
                        operation.model, operation.error)
        except Exception as exc:  # an operation never takes the replica down with it
            log.exception("%s failed", operation.id)
            operation.state, operation.error = "failed", f"internal error: {exc!r}"
        finally:
            beat.cancel()
            for backend in backends:
                backend.transitions.pop(operation.model, None)
            operation.ended_at = operation.heartbeat_at = time.time()
            with contextlib.suppress(StoreError):
                await self._save(operation)
                for name in operation.backends:
                    await self.store.release_claim(name, operation.id)
            self._running.pop(operation.id, None)

    async def _steps(self, operation: Operation, backends: list[Backend]) -> None:
        assert self.ops is not None, "the replica is not running"
        model = operation.model
        if operation.kind == "unload":
            self._mark(backends[0], "unloading", operation)
            await self.ops.unload(backends[0], model, self._progress(operation, 0, 1))
            self._lets_go(backends[0], model)
            self._applied.add(operation.id)
            return
        target = backends[-1]
        self._mark(target, "loading", operation)
        share = 0.8 if operation.kind == "migrate" else 1.0
        began = time.monotonic()
        await self.ops.load(target, model, operation.path,
                            self._progress(operation, 0, share))
        operation.load_seconds = round(time.monotonic() - began, 2)
        target.load_seconds[model] = operation.load_seconds
        target.transitions.pop(model, None)
        self._serves(target, model)  # routable here the moment it is loaded
        if operation.kind == "migrate":  # the target serves: the source can let go
            self._mark(backends[0], "unloading", operation)
            await self.ops.unload(backends[0], model, self._progress(operation, share, 1))
            self._lets_go(backends[0], model)
        self._applied.add(operation.id)

    def _mark(self, backend: Backend, kind: Literal["loading", "unloading"],
              operation: Operation) -> None:
        backend.transitions[operation.model] = Transition(kind, operation.id,
                                                          time.time(), operation.progress)

    def _serves(self, backend: Backend, model: str) -> None:
        if model not in backend.models:
            backend.models = backend.models | {model}
            self.registry.reindex()

    def _lets_go(self, backend: Backend, model: str) -> None:
        """After an unload: where the server's list drops what it unloaded (vLLM), the
        model is gone, unless the config names it; elsewhere it stays, cold, loaded
        again on demand."""
        if not backend.kind.lists_unloaded and model in backend.models and \
                model not in backend.config.models:
            backend.models = backend.models - {model}
            self.registry.reindex()

    def _progress(self, operation: Operation, start: float, end: float) -> Any:
        def report(fraction: float | None) -> None:
            if fraction is not None:
                operation.progress = round(start + (end - start) * fraction, 4)
        return report

    async def _heartbeat(self, operation: Operation) -> None:
        """Renew the claims and write the progress, a few times per timeout."""
        ttl = int(self.timeout * 1000)
        while True:
            await asyncio.sleep(min(1.0, self.timeout / 4))
            operation.heartbeat_at = time.time()
            for name in operation.backends:
                backend = self.registry.get(name)
                found = backend.transitions.get(operation.model) if backend else None
                if backend is not None and found is not None:
                    backend.transitions[operation.model] = msgspec.structs.replace(
                        found, progress=operation.progress)
            with contextlib.suppress(StoreError):
                for name in operation.backends:
                    await self.store.renew_claim(name, operation.id, ttl)
                await self._save(operation)
            stop_if_cancelled()  # redis-py may swallow a cancel, or turn it into an error

    async def _save(self, operation: Operation) -> None:
        await self.store.save_operation(operation.id, msgspec.json.encode(operation),
                                        operation.started_at)

    # -- reading -------------------------------------------------------------------------
    async def get(self, operation_id: str) -> dict[str, Any]:
        raw = await self.store.load_operation(operation_id)
        if raw is None:
            raise NotFound(f"no operation '{operation_id}'", param="id")
        return _decode(raw).shown(time.time(), self.timeout)

    async def recent(self) -> list[dict[str, Any]]:
        now = time.time()
        return [_decode(raw).shown(now, self.timeout)
                for raw in await self.store.recent_operations(LISTED)]

    # -- the fleet's operations ----------------------------------------------------------
    async def sync(self) -> None:
        """Mark the transitions of operations other replicas run (and clear finished
        ones), so this replica's routing keeps off a backend that is loading; apply once
        what each finished one left, the newest per backend and model."""
        now = time.time()
        running: dict[tuple[str, str], Transition] = {}
        finished: list[Operation] = []
        for raw in await self.store.recent_operations(LISTED):  # newest first
            operation = _decode(raw)
            if operation.state == "running" and not operation.stale(now, self.timeout):
                running[_moving(operation)] = Transition(
                    "unloading" if operation.kind == "unload" else "loading", operation.id,
                    operation.started_at, operation.progress)
            elif operation.state == "done":
                finished.append(operation)
        self._settle(finished)
        self._adopt(running)

    def _settle(self, finished: list[Operation]) -> None:
        """What finished operations left (newest first): a load done elsewhere is routable
        here too, an unload lets go. Each is applied once, and only if it ended after this
        replica started: a health check later than it knows better (a server that
        restarted without the model)."""
        decided: set[tuple[str, str]] = set()
        for operation in finished:
            for name, loaded in _outcomes(operation):
                backend = self.registry.get(name)
                if (name, operation.model) in decided or backend is None:
                    continue
                decided.add((name, operation.model))
                if loaded and operation.load_seconds is not None:  # the newest load's time
                    backend.load_seconds[operation.model] = operation.load_seconds
                if operation.id in self._applied or \
                        (operation.ended_at or 0.0) < self._started_at:
                    continue
                if loaded:
                    self._serves(backend, operation.model)
                else:
                    self._lets_go(backend, operation.model)
        listed = {op.id for op in finished}
        self._applied |= listed
        if len(self._applied) > 2 * LISTED:  # only a listed one can come again
            self._applied &= listed

    def _adopt(self, running: dict[tuple[str, str], Transition]) -> None:
        """The fleet's transitions on this replica's backends; its own stay as they are."""
        for backend in self.registry:
            for model, transition in list(backend.transitions.items()):
                if (backend.name, model) not in running and \
                        transition.operation not in self._running:
                    del backend.transitions[model]
        for (name, model), transition in running.items():
            found = self.registry.get(name)
            if found is not None and transition.operation not in self._running:
                found.transitions[model] = transition

    async def sync_forever(self) -> None:
        while True:
            with contextlib.suppress(StoreError):
                await self.sync()
            stop_if_cancelled()  # redis-py may swallow a cancel, or turn it into an error
            await asyncio.sleep(self.config.sync_interval_seconds)

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()


def _outcomes(operation: Operation) -> list[tuple[str, bool]]:
    """(backend, loaded there) for what a finished operation changed."""
    if operation.kind == "unload":
        return [(operation.backends[0], False)]
    if operation.kind == "migrate":
        return [(operation.backends[1], True), (operation.backends[0], False)]
    return [(operation.backends[0], True)]


def _moving(operation: Operation) -> tuple[str, str]:
    """(backend, model) of what a running operation has in transition now."""
    backend = operation.backends[0] if operation.kind == "unload" else operation.backends[-1]
    return backend, operation.model
