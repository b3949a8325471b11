"""Rate limiters: how long to wait before retrying an item
(≙ client-go util/workqueue/default_rate_limiters.go).

Place in the data flow: ``RateLimitingQueue.add_rate_limited(item)`` asks its limiter
``when(item)`` and hands the delay to ``add_after``; a worker that succeeded calls
``forget(item)`` to clear the item's failure history.

All delays are in seconds (floats).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Hashable, MutableMapping
from typing import Generic, Protocol, TypeVar, final

from cachetools import LRUCache, TTLCache

from pycontroller._util._clock import REAL_CLOCK, Clock

K = TypeVar("K", bound=Hashable)
K_contra = TypeVar("K_contra", bound=Hashable, contravariant=True)


class RateLimiter(Protocol[K_contra]):
    """Decides how long an item waits before it is retried (≙ ``TypedRateLimiter``).

    Thread-safety: implementations must be thread-safe.
    """

    def when(self, item: K_contra) -> float:
        """Record a retry of ``item`` and return the seconds to wait before it."""
        ...

    def forget(self, item: K_contra) -> None:
        """Stop tracking ``item`` (call it when the item succeeded, or is dropped)."""
        ...

    def num_requeues(self, item: K_contra) -> int:
        """Return how many retries of ``item`` are being tracked."""
        ...


def _per_item_counts(
    max_items: int | None, forget_after: float | None, clock: Clock
) -> MutableMapping[K, int]:
    """Per-item failure counts: a dict, or a bounded/expiring cachetools cache."""
    if max_items is not None and max_items < 1:
        raise ValueError(f"max_items must be >= 1, got {max_items}")
    if forget_after is not None:
        if forget_after <= 0:
            raise ValueError(f"forget_after must be > 0, got {forget_after}")
        maxsize = math.inf if max_items is None else max_items
        return TTLCache(maxsize=maxsize, ttl=forget_after, timer=clock.now)
    if max_items is not None:
        return LRUCache(maxsize=max_items)
    return {}


@final
class ItemExponentialFailureRateLimiter(Generic[K]):
    """Per-item exponential backoff: ``base_delay * 2**n`` capped at ``max_delay``.

    ``n`` is the number of failures recorded for the item before this call, so the first
    ``when`` returns ``base_delay``; ``forget`` resets ``n`` to 0. With the defaults:
    5 ms, 10 ms, 20 ms, … about 655 s at the 18th failure, 1000 s from the 19th.

    Per-item state is unbounded by default, as in client-go: callers must ``forget``
    every item they stop retrying. ``max_items`` bounds it (least recently failed items
    are dropped first); ``forget_after`` drops an item's history once it has not failed
    for that many seconds. A dropped item starts again from the first delay.

    Args:
        base_delay: delay of the first retry, in seconds.
        max_delay: largest delay returned.
        max_items: bound on the number of items tracked (LRU); ``None`` = unbounded.
        forget_after: seconds without failure after which an item is forgotten.
        clock: time source for ``forget_after``.

    Thread-safety: thread-safe.

    Invariants: ``num_requeues(item)`` equals the number of ``when(item)`` calls since
    the last ``forget(item)`` (or eviction); returned delays are within
    ``[base_delay, max_delay]``.
    """

    def __init__(
        self, *, base_delay: float = 0.005, max_delay: float = 1000.0,
        max_items: int | None = None, forget_after: float | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        if base_delay < 0 or max_delay < base_delay:
            raise ValueError(f"need 0 <= base_delay <= max_delay, got {base_delay}, {max_delay}")
        self._base = base_delay
        self._max = max_delay
        self._lock = threading.Lock()
        self._failures: MutableMapping[K, int] = _per_item_counts(
            max_items, forget_after, clock)  # guarded by _lock

    def when(self, item: K) -> float:
        """Record a failure of ``item``; return ``base_delay * 2**n`` capped at max."""
        lock = self._lock  # explicit acquire/release: cheaper than ``with`` on CPython 3.11
        lock.acquire()
        try:
            n = self._failures.get(item, 0)
            self._failures[item] = n + 1
        finally:
            lock.release()
        try:
            delay = math.ldexp(self._base, n)
        except OverflowError:
            return self._max
        return min(delay, self._max)

    def forget(self, item: K) -> None:
        """Clear the failure count of ``item``."""
        lock = self._lock
        lock.acquire()
        try:
            self._failures.pop(item, None)
        finally:
            lock.release()

    def num_requeues(self, item: K) -> int:
        """Return the failures recorded for ``item``."""
        with self._lock:
            return self._failures.get(item, 0)


@final
class ItemFastSlowRateLimiter(Generic[K]):
    """Per item: ``fast_delay`` for the first ``max_fast_attempts`` retries, then
    ``slow_delay``.

    Per-item state is unbounded by default, as in client-go: callers must ``forget``
    every item they stop retrying. ``max_items`` bounds it (least recently failed items
    are dropped first); ``forget_after`` drops an item's history once it has not failed
    for that many seconds. A dropped item starts again from the first delay.

    Args:
        fast_delay: delay of the first ``max_fast_attempts`` retries, in seconds.
        slow_delay: delay of every later retry.
        max_fast_attempts: how many retries use ``fast_delay``.
        max_items: bound on the number of items tracked (LRU); ``None`` = unbounded.
        forget_after: seconds without failure after which an item is forgotten.
        clock: time source for ``forget_after``.

    Thread-safety: thread-safe.

    Invariants: ``num_requeues(item)`` equals the number of ``when(item)`` calls since
    the last ``forget(item)`` (or eviction).
    """

    def __init__(
        self, *, fast_delay: float, slow_delay: float, max_fast_attempts: int,
        max_items: int | None = None, forget_after: float | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        if fast_delay < 0 or slow_delay < 0 or max_fast_attempts < 0:
            raise ValueError("delays and max_fast_attempts must be >= 0")
        self._fast = fast_delay
        self._slow = slow_delay
        self._max_fast = max_fast_attempts
        self._lock = threading.Lock()
        self._attempts: MutableMapping[K, int] = _per_item_counts(
            max_items, forget_after, clock)  # guarded by _lock

    def when(self, item: K) -> float:
        """Count an attempt; return the fast delay while within the fast attempts."""
        with self._lock:
            n = self._attempts.get(item, 0) + 1
            self._attempts[item] = n
        return self._fast if n <= self._max_fast else self._slow

    def forget(self, item: K) -> None:
        """Clear the attempt count of ``item``."""
        with self._lock:
            self._attempts.pop(item, None)

    def num_requeues(self, item: K) -> int:
        """Return the attempts recorded for ``item``."""
        with self._lock:
            return self._attempts.get(item, 0)


@final
class BucketRateLimiter(Generic[K]):
    """An overall token bucket: ``qps`` tokens per second, at most ``burst`` stored.

    Every ``when`` reserves one token, whatever the item (even items later forgotten),
    and returns how long until that token exists: 0 while the bucket holds tokens, then
    1/qps, 2/qps, … for calls beyond the burst (≙ ``rate.Limiter.Reserve().Delay()``).
    The bucket starts full. ``num_requeues`` is always 0 and ``forget`` does nothing.

    Args:
        qps: tokens added per second (``math.inf``: never wait).
        burst: bucket size.
        clock: time source.

    Thread-safety: thread-safe.

    Invariants: tokens ≤ burst; tokens may go negative (reservations in the future).
    """

    def __init__(self, *, qps: float = 10.0, burst: int = 100, clock: Clock = REAL_CLOCK) -> None:
        if qps <= 0 or burst < 1:
            raise ValueError(f"need qps > 0 and burst >= 1, got {qps}, {burst}")
        self._qps = qps
        self._burst = float(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)  # guarded by _lock
        self._last = clock.now()  # guarded by _lock

    def when(self, item: K) -> float:
        """Reserve a token; return the seconds until it is available."""
        if math.isinf(self._qps):
            return 0.0
        lock = self._lock  # explicit acquire/release: cheaper than ``with`` on CPython 3.11
        lock.acquire()
        try:
            now = self._clock.now()
            if now > self._last:
                self._tokens = min(self._burst, self._tokens + (now - self._last) * self._qps)
                self._last = now
            self._tokens -= 1.0
            tokens = self._tokens
        finally:
            lock.release()
        return 0.0 if tokens >= 0 else -tokens / self._qps

    def forget(self, item: K) -> None:
        """Do nothing: the bucket is shared by all items."""

    def num_requeues(self, item: K) -> int:
        """Return 0: the bucket does not track items."""
        return 0


@final
class MaxOfRateLimiter(Generic[K]):
    """Asks every limiter and returns the longest delay.

    Every limiter's ``when`` is called, so all of them advance their state even when one
    alone sets the delay. ``num_requeues`` is the largest count; ``forget`` is forwarded
    to all.

    Args:
        *limiters: at least one limiter.

    Thread-safety: thread-safe if the limiters are; holds no lock of its own.
    """

    def __init__(self, *limiters: RateLimiter[K]) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self._limiters = limiters

    def when(self, item: K) -> float:
        """Call ``when`` on every limiter; return the largest delay."""
        return max([limiter.when(item) for limiter in self._limiters])

    def forget(self, item: K) -> None:
        """Forward ``forget`` to every limiter."""
        for limiter in self._limiters:
            limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        """Return the largest ``num_requeues`` of the limiters."""
        return max(limiter.num_requeues(item) for limiter in self._limiters)


@final
class WithMaxWaitRateLimiter(Generic[K]):
    """Clamps another limiter's delay to ``max_delay``.

    Args:
        limiter: the limiter whose delays are clamped.
        max_delay: the longest delay returned, in seconds.

    Thread-safety: thread-safe if ``limiter`` is.
    """

    def __init__(self, limiter: RateLimiter[K], *, max_delay: float) -> None:
        if max_delay < 0:
            raise ValueError(f"max_delay must be >= 0, got {max_delay}")
        self._limiter = limiter
        self._max = max_delay

    def when(self, item: K) -> float:
        """Return the wrapped limiter's delay, at most ``max_delay``."""
        return min(self._limiter.when(item), self._max)

    def forget(self, item: K) -> None:
        """Forward to the wrapped limiter."""
        self._limiter.forget(item)

    def num_requeues(self, item: K) -> int:
        """Forward to the wrapped limiter."""
        return self._limiter.num_requeues(item)


def default_controller_rate_limiter(*, clock: Clock = REAL_CLOCK) -> MaxOfRateLimiter[K]:
    """Return client-go's ``DefaultControllerRateLimiter``.

    ``MaxOf(ItemExponentialFailure(5 ms, 1000 s), Bucket(10 qps, burst 100))``: per-item
    exponential backoff, plus an overall limit that throttles all retries after 100
    rapid ones. Each call returns a new limiter with its own state.
    """
    return MaxOfRateLimiter(
        ItemExponentialFailureRateLimiter[K](base_delay=0.005, max_delay=1000.0, clock=clock),
        BucketRateLimiter[K](qps=10.0, burst=100, clock=clock),
    )


def default_item_based_rate_limiter(
    *, clock: Clock = REAL_CLOCK
) -> ItemExponentialFailureRateLimiter[K]:
    """Return client-go's ``DefaultItemBasedRateLimiter``: per-item 1 ms … 1000 s."""
    return ItemExponentialFailureRateLimiter(base_delay=0.001, max_delay=1000.0, clock=clock)
