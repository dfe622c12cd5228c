"""The cyclic garbage collector, tuned for a process that holds thousands of sockets.

With thousands of sockets open, the objects alive at a collection (connections, buffers, what
each one keeps) are many, and CPython's default thresholds (a young collection every 700
allocations, a full one whenever a quarter more objects have reached the oldest generation) make
the collector expensive twice over: it runs constantly, and every full pass walks every
connection. Measured under ``fleet bench ingest`` (10,000 connections): a server's collector took
40% of its CPU; the load generator paused for full passes of 145 ms (p50, 280 ms at most) twenty
times a minute, which held back every ack and console frame it was reading meanwhile.

The remedy: what lives as long as the process (the road network, the connections open at the
moment) is frozen out of every pass, and young collections run every 50,000 allocations.
Reference cycles are still collected, only less often.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 50_000  # allocations between young collections (CPython's default: 700)
OLDER_THRESHOLD = 20  # young (then middle) collections between older ones (default: 10)


def tune_for_many_sockets() -> None:
    """Freeze what is alive now out of every collection, and collect less often, for good."""
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, OLDER_THRESHOLD, OLDER_THRESHOLD)


@contextlib.contextmanager
def tuned_for_many_sockets() -> Iterator[None]:
    """:func:`tune_for_many_sockets` for the block; the previous thresholds after it, and what
    it froze back under the collector's watch."""
    previous = gc.get_threshold()
    tune_for_many_sockets()
    try:
        yield
    finally:
        gc.set_threshold(*previous)
        gc.unfreeze()
