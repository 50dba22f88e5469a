"""Garbage-collector settings for a long-running replica.

CPython's defaults suit short scripts. A gateway holds tens of thousands of
objects that live forever (modules, config, registry) and, under load, a few
thousand that live for one request: with a first-generation threshold of 700
the in-flight set alone sets off a young collection every few dozen requests,
and the survivors it promotes end in full collections that walk the whole heap.
Measured under 64 connections (docs/benchmarks.md): about 20 µs of CPU per
request went to the collector. Reference counting frees nearly everything a
request allocates, so collections are only needed for the rare cycle.
"""

from __future__ import annotations

import gc

# Net container allocations between young collections: above the in-flight set of a
# busy replica, so collections come from real growth, not from requests in flight.
YOUNG_THRESHOLD = 10_000
OLDER_THRESHOLDS = (10, 10)


def tune_for_serving() -> None:
    """Call once, after start-up has built everything that lives as long as the process."""
    gc.collect()   # start-up garbage goes now, not into the frozen set
    gc.freeze()    # what is alive now is never scanned again
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
