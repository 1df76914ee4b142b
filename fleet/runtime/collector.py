"""Python's garbage collector set for a hub: a large heap that lives for days, allocating fast.

The cyclic collector's defaults (a young collection every 700 allocations, the whole heap
traversed every 100 of those) suit short scripts. A hub holding a thousand cluster entries has
millions of long-lived objects (imported modules, clients, live caches, target records), and every
full collection walks all of them: measured on ``bench.many_clusters`` at 1,000 entries, the
collector took 6.7 s of the hub's CPU from start to a converged commit, its young collections
1.8 ms each. Two settings bring that to 1.3 s (converge-all 52 s to 41 s, the same RSS):

- :func:`tune`, at start: thresholds ``(10000, 20, 20)``, so young collections are rarer (the
  survivors of each are walked again at every one) and full ones much rarer; garbage in cycles
  lives a little longer, which the RSS figure did not show.
- :func:`settle`, once the hub is ready: one full collection, then :func:`gc.freeze` of what is
  left (the imports, the config, the services, the cluster files read), which no later
  collection walks again. Objects made after it (entries connecting, caches filling) are
  collected as usual.
"""

from __future__ import annotations

import gc

__all__ = ["THRESHOLDS", "settle", "tune"]

THRESHOLDS = (10_000, 20, 20)


def tune() -> None:
    """Collect less often (see the module)."""
    gc.set_threshold(*THRESHOLDS)


def settle() -> int:
    """Collect once and freeze the survivors; how many objects were frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
