"""Keeping a big object cache out of CPython's full garbage collections.

Cached objects are untracked as the informer's FIFO queues them
(``pycontroller.client._lazy.leave_gc``), and so is what they decode when read, so they cost
collections nothing; an object into which the transform stored anything but JSON values stays
tracked. A cache of decoded JSON holds about 85 gc-tracked containers per pod; every full
(gen-2) collection walks all of them, which costs about 0.4 to 0.9 s per 10,000 cached pods on
CPython 3.11 (see ``docs/concepts/cache.md``). Decoded API objects contain no reference cycles,
so the cyclic GC can never free them: walking them is pure cost. :func:`freeze_cache` moves
everything tracked at that moment into the permanent generation, which collections skip.

Owner: the ``Manager`` calls it, once every handler has seen its initial list; nothing else
in pycontroller does (not the informers, not the factory), because ``gc.freeze`` is
process-global. An application running informers without a ``Manager`` calls it itself
after ``wait_for_cache_sync`` (and, optionally, again after a large relist).

Freezing does not help while a cache *grows* (initial list, relist): those collections walk the
new, unfrozen objects. There a larger generation-0 threshold helps (measured 1.7-2.4 s -> 0.4 s
of GC per 10k pods); that knob is equally process-global and belongs to the application or the
``Manager``, not to this module.
"""

from __future__ import annotations

import gc
import time

import structlog

__all__ = ["freeze_cache"]

_log = structlog.get_logger(__name__)


def freeze_cache(*, collect: bool = True) -> None:
    """Exempt every object alive now from future cyclic garbage collections (``gc.freeze``).

    Call it after the initial sync of the informers (and, optionally, after a relist was
    applied), when the process is quiet. Frozen objects are still freed as usual when their
    reference count drops to zero (a replaced or deleted API object, since it holds no cycles),
    but reference *cycles* that are frozen are never collected: hence the ``gc.collect()``
    first, which costs one full collection (the last one that has to walk the cache).

    This is process-global: it also freezes every other object alive, which is what a
    long-running controller wants (modules, classes, clients all live forever anyway).

    Args:
        collect: run a full collection first so existing garbage cycles are freed rather than
            frozen. Only skip it if the process is known to have no cyclic garbage.

    Thread-safety: thread-safe (the GC runs with the GIL held); may be called repeatedly.
    """
    start = time.perf_counter()
    collected = gc.collect() if collect else 0
    gc.freeze()
    # Not gc.get_freeze_count(): it walks the whole permanent generation (~80 ms per 10k pods).
    _log.info(
        "gc_frozen",
        collected_objects=collected,
        duration_seconds=round(time.perf_counter() - start, 4),
    )
