"""A clock that only moves when a test says so (≙ k8s.io/utils/clock/testing)."""

from __future__ import annotations

import itertools
import threading
from typing import final


@final
class FakeClock:
    """Manual time for tests: ``now()`` changes only through ``step``/``set``.

    Waiters (``wait``/``sleep``) are woken whenever time moves, and return once their
    deadline is reached, so code under test behaves as if that much time had passed.

    Every ``step``/``set`` starts a new *epoch*. ``wait`` returns at once (a spurious
    wake-up, which the ``Clock`` protocol allows) when the calling thread last read
    ``now()`` in an older epoch, so a thread that is found waiting in the current epoch
    (``wait_for_waiters(after_step=True)``) has acted on the current time. That lets a
    test step time and then wait, without sleeping, until a background loop has caught up.

    Thread-safety: thread-safe.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._lock = threading.Condition()
        self._now = start  # guarded by _lock
        self._epoch = 0  # guarded by _lock; incremented by every time change
        # Registered waiters: token -> epoch in which the wait began (or, for sleepers,
        # in which they last checked the time).
        self._waiters: dict[int, int] = {}  # guarded by _lock
        self._sleepers: dict[int, int] = {}  # guarded by _lock
        self._conds: dict[int, threading.Condition] = {}  # guarded by _lock
        self._tokens = itertools.count()
        self._seen = threading.local()  # per thread: epoch of its last now()

    def now(self) -> float:
        """Return the fake time."""
        with self._lock:
            self._seen.epoch = self._epoch
            return self._now

    def step(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every waiter."""
        with self._lock:
            self._now += seconds
            self._epoch += 1
            conds = list(self._conds.values())
            self._lock.notify_all()
        for cond in conds:
            with cond:
                cond.notify_all()

    def set(self, when: float) -> None:
        """Move time to ``when`` (never backwards)."""
        with self._lock:
            delta = when - self._now
        if delta > 0:
            self.step(delta)

    def has_waiters(self) -> bool:
        """Whether some thread is currently blocked in ``wait`` or ``sleep``."""
        with self._lock:
            return bool(self._waiters) or bool(self._sleepers)

    def wait_for_waiters(
        self, count: int = 1, timeout: float = 5.0, *, after_step: bool = False
    ) -> bool:
        """Block (in real time) until ``count`` threads wait on this clock.

        Args:
            count: how many waiting threads (``wait`` or ``sleep``) to wait for.
            timeout: real seconds to wait at most.
            after_step: count only threads that began waiting (or last checked the
                time, for ``sleep``) after the latest ``step``/``set``, i.e. threads
                that have seen the current time.

        Returns:
            Whether that many waiters were seen before the timeout.
        """

        def enough() -> bool:
            epochs = [*self._waiters.values(), *self._sleepers.values()]
            if after_step:
                return sum(1 for e in epochs if e == self._epoch) >= count
            return len(epochs) >= count

        with self._lock:
            return self._lock.wait_for(enough, timeout)

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        """Wait on ``cond`` until notified or until fake time passes ``timeout``.

        Returns at once if time moved since this thread last called ``now()``.
        """
        with self._lock:
            seen = getattr(self._seen, "epoch", None)
            self._seen.epoch = None
            if seen is not None and seen != self._epoch:
                return
            deadline = None if timeout is None else self._now + timeout
            if deadline is not None and self._now >= deadline:
                return
            token = next(self._tokens)
            self._waiters[token] = self._epoch
            self._conds[token] = cond
            self._lock.notify_all()
        try:
            # Real-time cap so a missed notify cannot hang a test; callers re-check.
            cond.wait(0.05)
        finally:
            with self._lock:
                del self._waiters[token]
                del self._conds[token]

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Block until fake time advanced by ``seconds`` or ``stop`` is set."""
        with self._lock:
            deadline = self._now + seconds
            token = next(self._tokens)
            self._sleepers[token] = self._epoch
            self._lock.notify_all()
            try:
                while self._now < deadline:
                    if stop is not None and stop.is_set():
                        return True
                    self._lock.wait(0.05)
                    self._sleepers[token] = self._epoch
                    self._lock.notify_all()  # wait_for_waiters(after_step=True) sees it
            finally:
                del self._sleepers[token]
        return stop is not None and stop.is_set()
