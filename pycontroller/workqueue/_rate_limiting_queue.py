"""The rate-limiting queue: retries with backoff
(≙ client-go util/workqueue/rate_limiting_queue.go).

Place in the data flow: the queue a controller owns. Handlers ``add`` keys; a worker
that fails calls ``add_rate_limited(key)``, one that succeeds calls ``forget(key)``, and
both call ``done(key)``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar, final

from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller.metrics._provider import WorkqueueMetricsProvider
from pycontroller.workqueue._delaying_queue import _BaseDelayingQueue
from pycontroller.workqueue._rate_limiters import RateLimiter, default_controller_rate_limiter

K = TypeVar("K", bound=Hashable)


@final
class RateLimitingQueue(_BaseDelayingQueue[K]):
    """A ``DelayingQueue`` whose retries are spaced by a ``RateLimiter``.

    Contract (client-go ``workqueue.TypedRateLimitingInterface``): everything
    ``DelayingQueue`` guarantees, plus ``add_rate_limited(item)`` =
    ``add_after(item, rate_limiter.when(item))``; ``forget`` and ``num_requeues``
    delegate to the limiter. Call ``forget(item)`` once an item succeeds (or is given
    up), or its failure history, and the next delay, keep growing.

    Typical worker loop::

        while True:
            try:
                key = queue.get()
            except ShutDownError:
                return
            try:
                reconcile(key)
            except Exception:
                queue.add_rate_limited(key)
            else:
                queue.forget(key)
            finally:
                queue.done(key)

    Args:
        name: labels the queue's metrics and its thread; unnamed queues record nothing.
        metrics: as for ``WorkQueue``.
        clock: time source for delays, timeouts, metrics and the default limiter.
        rate_limiter: defaults to ``default_controller_rate_limiter(clock=clock)``.

    Thread-safety: thread-safe. The limiter is called without the queue's lock held.

    Invariants: those of ``DelayingQueue``.
    """

    def __init__(
        self, *, name: str = "", metrics: WorkqueueMetricsProvider | None = None,
        clock: Clock = REAL_CLOCK, rate_limiter: RateLimiter[K] | None = None,
    ) -> None:
        super().__init__(name=name, metrics=metrics, clock=clock)
        self._rate_limiter: RateLimiter[K] = (
            default_controller_rate_limiter(clock=clock) if rate_limiter is None
            else rate_limiter
        )

    @property
    def rate_limiter(self) -> RateLimiter[K]:
        """The limiter that spaces retries."""
        return self._rate_limiter

    def add_rate_limited(self, item: K) -> None:
        """Add ``item`` after the delay the rate limiter gives it (records a retry).

        The limiter is consulted even after shutdown (as in client-go); the add itself is
        then ignored.
        """
        self.add_after(item, self._rate_limiter.when(item))

    def forget(self, item: K) -> None:
        """Clear the limiter's history of ``item``; it does not remove ``item``."""
        self._rate_limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        """Return how many retries of ``item`` the limiter is tracking."""
        return self._rate_limiter.num_requeues(item)
