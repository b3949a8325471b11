"""Injectable time: the real clock and the protocol that fakes implement.

Every component that waits or measures time takes a ``clock=`` so tests can drive time
without sleeping (≙ k8s.io/utils/clock).
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    """A source of monotonic time that can also wait on a condition.

    Thread-safety: implementations are thread-safe.
    """

    def now(self) -> float:
        """Return monotonic seconds."""
        ...

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        """Wait on ``cond`` (held by the caller) for at most ``timeout`` seconds of this clock.

        May return early (spuriously or on notify); callers re-check their predicate.
        """
        ...

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Sleep ``seconds`` of this clock; return True at once if ``stop`` gets set."""
        ...


class RealClock:
    """The system's monotonic clock. Thread-safe."""

    def now(self) -> float:
        """Return ``time.monotonic()``."""
        return time.monotonic()

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        """Wait on ``cond`` for at most ``timeout`` real seconds."""
        cond.wait(timeout)

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        """Sleep, waking early when ``stop`` is set; return whether it was set."""
        if stop is None:
            time.sleep(max(0.0, seconds))
            return False
        return stop.wait(max(0.0, seconds))


REAL_CLOCK = RealClock()
