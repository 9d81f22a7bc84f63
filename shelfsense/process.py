"""Process-wide tuning for the long-running services (``cloud serve``, ``edge run``)."""

from __future__ import annotations

import gc

# First-generation threshold of the cyclic garbage collector (CPython's default is 700).
GC_THRESHOLD = 50_000


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a service that handles batches of thousands.

    A batch of 5,000 events is ~50,000 container objects (models, rows) alive while it is handled.
    With the default thresholds they survive young collections, reach the oldest generation within
    a batch or two and trigger full collections there, each traversing every object the process
    holds: measured at about a third of the cloud's CPU under sustained ingest (bench/ingest.py)
    and an eighth of the edge's (bench/mqtt_to_cloud.py). Freezing what start-up built (modules,
    app, schemas) takes it out of those traversals for good, and a higher first threshold lets
    most of a batch's objects be freed by reference counting before any collection sees them.
    Call it once, after start-up, in the service's own process (not in a library or a test).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD)


__all__ = ["GC_THRESHOLD", "tune_gc"]
