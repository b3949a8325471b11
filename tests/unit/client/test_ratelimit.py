"""The client-side token bucket, on a fake clock."""

from __future__ import annotations

import threading

import pytest

from pycontroller.client._ratelimit import TokenBucket
from pycontroller.testing import FakeClock, wait_for


def test_burst_is_free_then_requests_are_spaced_by_one_over_qps() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=10, burst=3, clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.reserve() == pytest.approx(0.1)
    assert bucket.reserve() == pytest.approx(0.2)  # queued behind the previous reservation
    clock.step(1.0)  # refills, but never beyond the burst
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.0])
    assert bucket.reserve() == pytest.approx(0.1)


def test_acquire_sleeps_on_the_clock_until_the_token_is_due() -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps=2, burst=1, clock=clock)
    assert bucket.acquire() == 0.0
    waited: list[float] = []
    thread = threading.Thread(target=lambda: waited.append(bucket.acquire()),
                              name="pycontroller-test-acquire")
    thread.start()
    assert clock.wait_for_waiters(1, timeout=10)
    assert not waited
    clock.step(0.5)
    wait_for(lambda: waited, 10)
    thread.join(10)
    assert waited == [pytest.approx(0.5)]


@pytest.mark.parametrize(("qps", "burst"), [(0, 1), (-1, 1), (1, 0)])
def test_invalid_settings_are_refused(qps: float, burst: int) -> None:
    with pytest.raises(ValueError, match="qps > 0"):
        TokenBucket(qps, burst)
