"""Jittered exponential backoff with client-go's reflector defaults.

Delays are drawn from [d, d·(1+jitter)) with d = min(initial·factor^n, cap): with the
defaults 0.8 s, 2, 1.0, 30 s that is [0.8,1.6), [1.6,3.2) … then [30,60) forever. The state
returns to the first step when more than ``reset_after`` seconds passed since the last
reset (not since the last failure), as in client-go's backoff manager.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from pycontroller._util._clock import REAL_CLOCK, Clock


class Backoff:
    """Next-delay calculator. Not thread-safe: one reflector owns one."""

    def __init__(
        self, *, initial: float = 0.8, factor: float = 2.0, jitter: float = 1.0,
        cap: float = 30.0, reset_after: float = 120.0, clock: Clock = REAL_CLOCK,
        rand: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or factor < 1 or cap < initial or jitter < 0:
            raise ValueError("backoff needs 0 < initial <= cap, factor >= 1, jitter >= 0")
        self._initial, self._factor, self._jitter, self._cap = initial, factor, jitter, cap
        self._reset_after = reset_after
        self._clock = clock
        self._rand = rand
        self._step = 0
        self._last_reset = clock.now()

    def next(self) -> float:
        """Return the next delay in seconds and advance."""
        now = self._clock.now()
        if now - self._last_reset > self._reset_after:
            self._step, self._last_reset = 0, now
        base = min(self._initial * self._factor**self._step, self._cap)
        if base < self._cap:
            self._step += 1
        return base * (1.0 + self._jitter * self._rand())

    def reset(self) -> None:
        """Start again from the first step."""
        self._step, self._last_reset = 0, self._clock.now()
