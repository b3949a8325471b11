"""retry_on_conflict and RetryBackoff as pure logic (the 409s come from a stub)."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from pycontroller import retry_on_conflict
from pycontroller.client import DEFAULT_BACKOFF, DEFAULT_RETRY, RetryBackoff
from pycontroller.errors import ConflictError, NotFoundError


class RecordingClock:
    def __init__(self) -> None:
        self.sleeps: list[float] = []

    def now(self) -> float:
        return 0.0

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        raise AssertionError("not used")

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        self.sleeps.append(seconds)
        return False


def conflicts(n: int) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= n:
            raise ConflictError(409, "Conflict", "stale")
        return "ok"
    return calls, fn


def test_default_retry_is_client_go_default_retry() -> None:
    assert (DEFAULT_RETRY.steps, DEFAULT_RETRY.duration, DEFAULT_RETRY.factor,
            DEFAULT_RETRY.jitter) == (5, 0.010, 1.0, 0.1)
    assert (DEFAULT_BACKOFF.steps, DEFAULT_BACKOFF.factor) == (4, 5.0)
    delays = DEFAULT_RETRY.delays()
    assert len(delays) == 4 and all(0.010 <= d < 0.011 for d in delays)
    assert DEFAULT_BACKOFF.delays(lambda: 0.0) == pytest.approx([0.010, 0.050, 0.250])
    assert RetryBackoff(steps=4, duration=1, factor=3, cap=5).delays() == [1, 3, 5]


def test_succeeds_after_conflicts_with_sleeps_between() -> None:
    clock = RecordingClock()
    calls, fn = conflicts(2)
    assert retry_on_conflict(fn, clock=clock) == "ok"
    assert len(calls) == 3 and len(clock.sleeps) == 2


def test_last_conflict_propagates_after_steps() -> None:
    clock = RecordingClock()
    calls, fn = conflicts(10)
    with pytest.raises(ConflictError):
        retry_on_conflict(fn, clock=clock)
    assert len(calls) == 5 and len(clock.sleeps) == 4


def test_other_errors_are_not_retried() -> None:
    clock = RecordingClock()

    def fn() -> None:
        raise NotFoundError(404, "NotFound", "gone")

    with pytest.raises(NotFoundError):
        retry_on_conflict(fn, clock=clock)
    assert clock.sleeps == []


def test_backoff_is_validated() -> None:
    with pytest.raises(ValueError):
        RetryBackoff(steps=0, duration=0.01)
