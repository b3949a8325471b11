"""RateLimitingQueue: add_rate_limited, forget, num_requeues (spec §5.3)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycontroller.errors import ShutDownError
from pycontroller.testing._fake_clock import FakeClock
from pycontroller.workqueue import (
    ItemExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    RateLimitingQueue,
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def q(clock: FakeClock) -> Iterator[RateLimitingQueue[str]]:
    queue = RateLimitingQueue[str](clock=clock)
    yield queue
    queue.shut_down()


def settle(clock: FakeClock) -> None:
    assert clock.wait_for_waiters(1, after_step=True), "delaying loop did not settle"


class CountingLimiter:
    """Returns fixed delays and records its calls."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls: list[tuple[str, str]] = []

    def when(self, item: str) -> float:
        self.calls.append(("when", item))
        return self.delay

    def forget(self, item: str) -> None:
        self.calls.append(("forget", item))

    def num_requeues(self, item: str) -> int:
        return sum(1 for op, i in self.calls if op == "when" and i == item)


def test_default_limiter_waits_5ms_then_10ms_on_the_queue_clock(
    q: RateLimitingQueue[str], clock: FakeClock
) -> None:
    q.add_rate_limited("a")
    settle(clock)
    clock.step(0.004)
    settle(clock)
    assert len(q) == 0
    clock.step(0.001)
    assert q.get() == "a"
    assert q.num_requeues("a") == 1
    q.add_rate_limited("a")  # while processing
    clock.step(0.010)
    settle(clock)
    assert len(q) == 0  # ready, but "a" is still being processed
    q.done("a")
    assert q.get() == "a"
    assert q.num_requeues("a") == 2
    q.forget("a")
    assert q.num_requeues("a") == 0
    q.done("a")


def test_default_limiter_is_client_go_default(q: RateLimitingQueue[str]) -> None:
    assert isinstance(q.rate_limiter, MaxOfRateLimiter)


def test_injected_limiter_is_used(clock: FakeClock) -> None:
    limiter = CountingLimiter(3.0)
    q = RateLimitingQueue[str](clock=clock, rate_limiter=limiter)
    try:
        q.add_rate_limited("a")
        assert q.num_requeues("a") == 1
        q.forget("a")
        assert limiter.calls == [("when", "a"), ("forget", "a")]
        settle(clock)
        clock.step(2.9)
        settle(clock)
        assert len(q) == 0
        clock.step(0.1)
        assert q.get() == "a"
    finally:
        q.shut_down()


def test_zero_delay_is_added_at_once(clock: FakeClock) -> None:
    q = RateLimitingQueue[str](clock=clock, rate_limiter=CountingLimiter(0.0))
    q.add_rate_limited("a")
    assert len(q) == 1
    q.shut_down()


def test_after_shutdown_the_limiter_is_asked_but_nothing_is_added(clock: FakeClock) -> None:
    limiter = CountingLimiter(0.0)
    q = RateLimitingQueue[str](clock=clock, rate_limiter=limiter)
    q.shut_down()
    q.add_rate_limited("a")
    assert limiter.calls == [("when", "a")]
    with pytest.raises(ShutDownError):
        q.get()


def test_limiter_state_is_per_item(q: RateLimitingQueue[str]) -> None:
    limiter = ItemExponentialFailureRateLimiter[str]()
    q2 = RateLimitingQueue[str](rate_limiter=limiter)
    try:
        q2.add_rate_limited("a")
        q2.add_rate_limited("a")
        q2.add_rate_limited("b")
        assert (q2.num_requeues("a"), q2.num_requeues("b")) == (2, 1)
    finally:
        q2.shut_down()
