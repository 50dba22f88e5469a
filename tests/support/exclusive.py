"""Hold a lock shared by every xdist worker of a run, for a test that needs something the
workers cannot each have a copy of (fixed ports, one build in the source tree)."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder this run's workers share and no other run sees: under xdist each worker's
    base temp is inside it; with no workers it is the base temp itself."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if "PYTEST_XDIST_WORKER" in os.environ else base


@contextmanager
def one_worker_at_a_time(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Blocks until no other worker holds `name`; the kernel frees it if a worker dies."""
    with open(run_folder(tmp_path_factory) / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
