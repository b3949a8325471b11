"""Client-side request rate limiting: a token bucket (≙ client-go's flowcontrol
``NewTokenBucketRateLimiter``, the limiter behind ``rest.Config.QPS``/``Burst``).

Off by default, as in controller-runtime: the API server's own priority and fairness
protects it. Turn it on with ``connect(qps=..., burst=...)``.
"""

from __future__ import annotations

import threading
from typing import final

import structlog

from pycontroller._util._clock import REAL_CLOCK, Clock

_log = structlog.get_logger(__name__)
_LOG_WAITS_OVER = 1.0  # seconds; client-go logs "Waited for ... due to client-side throttling"


@final
class TokenBucket:
    """``qps`` tokens per second, at most ``burst`` saved up; each request takes one.

    A caller that finds no token reserves the next one and sleeps until it is due, so
    waiting callers are served in arrival order and the long-run rate never exceeds
    ``qps``.

    Thread-safety: thread-safe; the sleep happens outside the lock.

    Invariants: ``qps > 0``, ``burst >= 1``; tokens never exceed ``burst``.
    """

    def __init__(self, qps: float, burst: int, *, clock: Clock = REAL_CLOCK) -> None:
        if not qps > 0 or burst < 1:
            raise ValueError(f"need qps > 0 and burst >= 1 (got qps={qps}, burst={burst})")
        self.qps, self.burst = float(qps), int(burst)
        self._clock = clock
        self._lock = threading.Lock()
        self._tokens = float(burst)  # guarded by _lock; negative: reservations pending
        self._last = clock.now()  # guarded by _lock

    def reserve(self) -> float:
        """Take a token now; return how many seconds to wait before using it."""
        with self._lock:
            now = self._clock.now()
            self._tokens = min(float(self.burst),
                               self._tokens + (now - self._last) * self.qps)
            self._last = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def acquire(self, what: str = "") -> float:
        """Wait for a token; return the seconds waited."""
        delay = self.reserve()
        if delay > 0:
            self._clock.sleep(delay)
            if delay > _LOG_WAITS_OVER:
                _log.info("client_side_throttling", seconds=round(delay, 3), request=what)
        return delay
