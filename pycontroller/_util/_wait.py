"""Polling with a deadline, for conditions that have no event to wait on."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], *, timeout: float, interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Call ``predicate`` until it returns a truthy value; return that value.

    Raises:
        TimeoutError: still falsy after ``timeout`` seconds (the message names it).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {message}")
        time.sleep(interval)
