"""`nexus serve --workers N`: N replica processes on one port, supervised by a parent.

Each worker is a full replica with its own id (`<replica id>-w<i>`), bound to the
same port with SO_REUSEPORT, so the kernel spreads connections over them; they share
everything through Redis, which is why more than one worker needs `[redis]` (an
in-process budget cannot be shared). The parent restarts a worker that dies (with a
backoff, so a worker that cannot start does not spin) and on SIGTERM or SIGINT
passes the signal on, waits for every worker to drain, and exits.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from nexus.config.errors import ConfigError
from nexus.config.schema import Config

log = logging.getLogger("nexus.cli.workers")
RESTART_BACKOFF_SECONDS = (0.5, 1.0, 2.0, 5.0, 10.0)
HEALTHY_AFTER_SECONDS = 30.0  # a worker that lived this long restarts without backoff


def worker_count(value: str) -> int:
    """"auto" (every core) or a positive whole number."""
    if value == "auto":
        return os.cpu_count() or 1
    if value.isascii() and value.isdigit() and int(value) >= 1:
        return int(value)
    raise ValueError(f"expected a number of workers or 'auto', got {value!r}")


class Stop(Exception):
    pass


class Workers:
    def __init__(self, config: Config, config_path: str | None, count: int,
                 replica_id: str) -> None:
        if count > 1 and config.redis is None:
            raise ConfigError("command line", "--workers",
                              f"{count} workers need a shared store: set [redis] url (or "
                              "NEXUS_REDIS_URL); one replica's in-process budget cannot be "
                              "shared")
        self.config_path = config_path
        self.count = count
        self.replica_id = replica_id
        self.processes: dict[int, subprocess.Popen[bytes]] = {}  # worker index -> process
        self.started: dict[int, float] = {}
        self.failures: dict[int, int] = {}

    def run(self) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        try:
            for index in range(self.count):
                self._start(index)
            while True:
                self._reap(*os.wait())
        except Stop:
            return self._drain()

    def _start(self, index: int) -> None:
        env = {**os.environ, "NEXUS_REPLICA_ID": f"{self.replica_id}-w{index}",
               "NEXUS_REUSE_PORT": "1"}
        command = [sys.executable, "-m", "nexus", "serve"]
        if self.config_path:
            command += ["--config", self.config_path]
        self.processes[index] = subprocess.Popen(command, env=env)
        self.started[index] = time.monotonic()
        log.info("worker %d started (pid %d)", index, self.processes[index].pid)

    def _reap(self, pid: int, status: int) -> None:
        index = next((i for i, p in self.processes.items() if p.pid == pid), None)
        if index is None:
            return
        self.processes[index].returncode = os.waitstatus_to_exitcode(status)
        lived = time.monotonic() - self.started[index]
        self.failures[index] = 0 if lived >= HEALTHY_AFTER_SECONDS \
            else self.failures.get(index, 0) + 1
        wait = RESTART_BACKOFF_SECONDS[min(self.failures[index],
                                           len(RESTART_BACKOFF_SECONDS)) - 1] \
            if self.failures[index] else 0.0
        log.warning("worker %d (pid %d) exited with %s; starting it again in %.1f s", index,
                    pid, self.processes[index].returncode, wait)
        time.sleep(wait)  # a backoff between restarts, in the supervisor only
        self._start(index)

    def _stop(self, signum: int, frame: FrameType | None) -> None:
        raise Stop

    def _drain(self) -> int:
        """Pass SIGTERM on and wait: each worker finishes what it has in flight."""
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.info("all %d workers stopped", len(self.processes))
        return 0
