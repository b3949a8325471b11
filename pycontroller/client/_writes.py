"""Write helpers around ``Client``: the result of ``create_or_update`` and conflict retries.

≙ controller-runtime's ``controllerutil.OperationResult`` and client-go's ``util/retry``.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, final

from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller.errors import ConflictError

T = TypeVar("T")


@final
class OperationResult(enum.StrEnum):
    """What ``Client.create_or_update`` did (values as controller-runtime's)."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@final
@dataclass(frozen=True, slots=True)
class RetryBackoff:
    """Delays between attempts (≙ ``wait.Backoff``).

    At most ``steps`` attempts; before attempt n+1 the caller sleeps ``d·(1 + jitter·r)``
    with ``r`` uniform in [0, 1) and ``d = duration·factor^(n-1)``, capped at ``cap``
    seconds when ``cap`` is set. Immutable, thread-safe.
    """

    steps: int
    duration: float
    factor: float = 1.0
    jitter: float = 0.0
    cap: float | None = None

    def __post_init__(self) -> None:
        if self.steps < 1 or self.duration < 0 or self.factor < 0 or self.jitter < 0:
            raise ValueError("RetryBackoff needs steps >= 1 and non-negative durations")

    def delays(self, rand: Callable[[], float] = random.random) -> list[float]:
        """The ``steps - 1`` sleeps between attempts, jitter drawn from ``rand``."""
        out: list[float] = []
        duration = self.duration
        for _ in range(self.steps - 1):
            out.append(duration * (1.0 + self.jitter * rand()) if self.jitter else duration)
            duration *= self.factor
            if self.cap is not None and duration > self.cap:
                duration = self.cap
        return out


DEFAULT_RETRY = RetryBackoff(steps=5, duration=0.010, factor=1.0, jitter=0.1)
"""client-go's ``retry.DefaultRetry``: 5 attempts, about 10 ms apart."""

DEFAULT_BACKOFF = RetryBackoff(steps=4, duration=0.010, factor=5.0, jitter=0.1)
"""client-go's ``retry.DefaultBackoff``: 4 attempts, 10 ms, 50 ms, 250 ms apart."""


def retry_on_conflict(fn: Callable[[], T], *, backoff: RetryBackoff = DEFAULT_RETRY,
                      clock: Clock | None = None) -> T:
    """Call ``fn`` until it does not raise ``ConflictError`` (≙ ``retry.RetryOnConflict``).

    ``fn`` should read the object afresh, change it and write it: a 409 means someone
    else wrote in between. At most ``backoff.steps`` calls; the last ``ConflictError``
    propagates when they are used up, and any other exception propagates at once.
    The sleeps use ``clock`` (default: real time) on the calling thread.
    """
    sleeper = clock or REAL_CLOCK
    delays = backoff.delays()
    for delay in delays:
        try:
            return fn()
        except ConflictError:
            sleeper.sleep(delay)
    return fn()
