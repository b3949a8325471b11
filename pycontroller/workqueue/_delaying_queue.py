"""The delaying queue: ``add_after`` (≙ client-go util/workqueue/delaying_queue.go).

Place in the data flow: between a controller's ``Requeue(after=…)`` or rate limiter and
the basic work queue. Items wait in a min-heap ordered by ready time; a background thread
moves them into the queue when they are ready.
"""

from __future__ import annotations

import heapq
import itertools
import math
import threading
import time
from collections.abc import Hashable
from typing import TypeVar, final

from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller.metrics._provider import WorkqueueMetricsProvider
from pycontroller.workqueue._queue import _BaseQueue

K = TypeVar("K", bound=Hashable)

_HEARTBEAT = 10.0
"""Longest wait of the loop without a wake-up (client-go's heartbeat; a safety net)."""

_MAX_MOVES_PER_LOCK = 1000
"""Ready items moved per lock hold, so getters are not starved when many become ready."""


class _BaseDelayingQueue(_BaseQueue[K]):
    """``_BaseQueue`` plus ``add_after``; shared by ``DelayingQueue`` and
    ``RateLimitingQueue``.

    The heap and its index share the queue's lock; the loop thread waits on
    ``_heap_changed`` through the injected clock, and is started by the first
    ``add_after`` with a positive delay, so queues that never delay own no thread.
    """

    def __init__(
        self, *, name: str, metrics: WorkqueueMetricsProvider | None, clock: Clock
    ) -> None:
        super().__init__(name=name, metrics=metrics, clock=clock)
        self._heap_changed = threading.Condition(self._lock)
        # Heap entries are (ready_at, seq, item); seq breaks ties FIFO and keeps items
        # from ever being compared. An entry is live iff _waiting[item] is that entry.
        # invariant: every value of _waiting is in _heap; stale entries are skipped
        self._heap: list[tuple[float, int, K]] = []  # guarded by _lock
        self._waiting: dict[K, tuple[float, int, K]] = {}  # guarded by _lock
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None  # guarded by _lock

    def add_after(self, item: K, delay: float) -> None:
        """Add ``item`` once ``delay`` seconds (of the queue's clock) have passed.

        Ignored after shutdown. ``delay <= 0`` adds at once. While ``item`` waits, a
        further ``add_after`` can only move its ready time earlier; later times are
        ignored. When it becomes ready it is ``add``-ed, with the usual de-duplication.
        Counts as a retry in the metrics.

        Raises:
            TypeError: ``delay`` is not a number.
            ValueError: ``delay`` is NaN (it would never be ready, and at the head of
                the heap it would hold back every item behind it).
        """
        if not isinstance(delay, (int, float)):
            raise TypeError(f"delay must be a number of seconds, not {delay!r}")
        if math.isnan(delay):
            raise ValueError("delay must be a number of seconds, not NaN")
        lock = self._lock  # explicit acquire/release: cheaper than ``with`` (see add())
        lock.acquire()
        try:
            if self._shutting_down:
                return
            if self._metrics is not None:
                self._metrics.retry()
            if delay <= 0:
                self._add_locked(item)
                return
            ready_at = self._clock.now() + delay
            current = self._waiting.get(item)
            if current is not None and current[0] <= ready_at:
                return
            entry = (ready_at, next(self._seq), item)
            self._waiting[item] = entry
            heapq.heappush(self._heap, entry)
            if current is not None and len(self._heap) > 2 * len(self._waiting) + 64:
                self._compact_locked()
            if self._thread is None:
                self._start_locked()
            elif self._heap[0] is entry:
                self._heap_changed.notify()
        finally:
            lock.release()

    def _compact_locked(self) -> None:
        """Drop stale heap entries (left behind when an item's time moved earlier)."""
        self._heap = list(self._waiting.values())
        heapq.heapify(self._heap)

    def _start_locked(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"pycontroller-delaying-queue-{self._name or 'unnamed'}",
            daemon=True,
        )
        self._thread.start()

    def _run(self) -> None:
        clock = self._clock
        while True:
            with self._lock:
                if self._shutting_down:
                    return
                now = clock.now()
                busy = self._move_ready_locked(now) == _MAX_MOVES_PER_LOCK
                if not busy:
                    timeout = _HEARTBEAT
                    if self._heap:
                        timeout = min(timeout, self._heap[0][0] - now)
                    clock.wait(self._heap_changed, timeout)
            if busy:
                # More are ready: let the workers woken so far take the lock first. Not a
                # wait for time to pass; sleep(0) only hands the GIL over.
                time.sleep(0)

    def _move_ready_locked(self, now: float) -> int:
        heap = self._heap
        waiting = self._waiting
        moved = 0
        while heap and heap[0][0] <= now and moved < _MAX_MOVES_PER_LOCK:
            entry = heapq.heappop(heap)
            item = entry[2]
            if waiting.get(item) is entry:
                del waiting[item]
                self._add_locked(item)
                moved += 1
        return moved

    def _shut_down_locked(self) -> None:
        super()._shut_down_locked()
        self._heap.clear()
        self._waiting.clear()
        self._heap_changed.notify_all()

    def _after_shut_down(self) -> None:
        with self._lock:
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()


@final
class DelayingQueue(_BaseDelayingQueue[K]):
    """A ``WorkQueue`` that can also add an item after a delay (``add_after``).

    Contract (client-go ``workqueue.TypedDelayingInterface``): everything ``WorkQueue``
    guarantees, plus: an item given to ``add_after(item, d)`` is added no earlier than
    ``d`` seconds later (by the queue's clock) and, unless the queue shuts down first,
    as soon as the loop thread sees that time; each item waits at most once, at the
    earliest time asked for; an earlier request wakes the loop so the new head is not
    late; at shutdown waiting items are dropped.

    The loop thread (``pycontroller-delaying-queue-<name>``, daemon) starts on the first
    positive delay, waits on the injected clock (so ``FakeClock.step`` releases ready
    items) and is joined by ``shut_down``/``shut_down_with_drain``.

    Args:
        name: labels the queue's metrics and its thread; unnamed queues record nothing.
        metrics: as for ``WorkQueue``.
        clock: time source for delays, timeouts and metrics.

    Thread-safety: thread-safe.

    Invariants: those of ``WorkQueue``; an item is at most once in the waiting heap
    (live entry); no item is added before its ready time.
    """

    def __init__(
        self, *, name: str = "", metrics: WorkqueueMetricsProvider | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        super().__init__(name=name, metrics=metrics, clock=clock)
