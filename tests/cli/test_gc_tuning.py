"""The collector settings a serving replica runs with (in a child: they are process-wide)."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc
from nexus.cli.gc_tuning import YOUNG_THRESHOLD, tune_for_serving
tune_for_serving()
assert gc.get_threshold()[0] == YOUNG_THRESHOLD, gc.get_threshold()
assert gc.get_freeze_count() > 1_000, gc.get_freeze_count()  # the start-up heap
cycle = []
cycle.append(cycle)
del cycle
assert gc.collect() >= 1  # cycles are still collected
"""


def test_serving_freezes_the_startup_heap_and_raises_the_young_threshold() -> None:
    subprocess.run([sys.executable, "-c", PROBE], check=True, timeout=60)
