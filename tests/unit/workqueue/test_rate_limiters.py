"""Rate limiters and their client-go defaults (spec §5.3, checklist 63-65)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pycontroller.testing._fake_clock import FakeClock
from pycontroller.workqueue import (
    BucketRateLimiter,
    ItemExponentialFailureRateLimiter,
    ItemFastSlowRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    WithMaxWaitRateLimiter,
    default_controller_rate_limiter,
    default_item_based_rate_limiter,
)


def test_exponential_doubles_from_base_and_forget_resets() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](base_delay=0.005, max_delay=1000.0)
    assert [limiter.when("a") for _ in range(5)] == pytest.approx(
        [0.005, 0.010, 0.020, 0.040, 0.080])
    assert limiter.num_requeues("a") == 5
    assert limiter.when("b") == pytest.approx(0.005)  # per item
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == pytest.approx(0.005)
    assert limiter.num_requeues("b") == 1


def test_exponential_defaults_reach_the_cap_at_the_nineteenth_failure() -> None:
    limiter = ItemExponentialFailureRateLimiter[str]()
    delays = [limiter.when("a") for _ in range(20)]
    assert delays[0] == pytest.approx(0.005)
    assert delays[17] == pytest.approx(655.36)
    assert delays[18] == 1000.0
    assert delays[19] == 1000.0


def test_exponential_is_overflow_safe() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](base_delay=1.0, max_delay=5.0)
    for _ in range(1100):
        delay = limiter.when("a")
    assert delay == 5.0
    assert limiter.num_requeues("a") == 1100


@given(
    base=st.floats(min_value=0.0, max_value=10.0),
    cap=st.floats(min_value=10.0, max_value=1e6),
    ops=st.lists(st.sampled_from(["when", "forget"]), max_size=80),
)
def test_exponential_delay_is_base_times_two_to_the_failures(
    base: float, cap: float, ops: list[str]
) -> None:
    limiter = ItemExponentialFailureRateLimiter[int](base_delay=base, max_delay=cap)
    failures = 0
    for op in ops:
        if op == "forget":
            limiter.forget(1)
            failures = 0
            continue
        delay = limiter.when(1)
        assert delay == min(base * 2.0**failures, cap)
        assert base <= delay <= cap
        failures += 1
        assert limiter.num_requeues(1) == failures


def test_item_based_default_starts_at_one_millisecond() -> None:
    limiter: RateLimiter[str] = default_item_based_rate_limiter()
    assert limiter.when("a") == pytest.approx(0.001)
    assert limiter.when("a") == pytest.approx(0.002)


def test_fast_slow_uses_fast_delay_for_the_first_attempts() -> None:
    limiter = ItemFastSlowRateLimiter[str](fast_delay=0.1, slow_delay=10.0, max_fast_attempts=3)
    assert [limiter.when("a") for _ in range(5)] == [0.1, 0.1, 0.1, 10.0, 10.0]
    assert limiter.num_requeues("a") == 5
    assert limiter.when("b") == 0.1
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.1


def test_bucket_allows_a_burst_then_spaces_by_one_over_qps() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter[str](qps=10.0, burst=3, clock=clock)
    assert [limiter.when("x") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert [limiter.when("x") for _ in range(3)] == pytest.approx([0.1, 0.2, 0.3])
    assert limiter.num_requeues("x") == 0
    limiter.forget("x")  # no effect
    assert limiter.when("x") == pytest.approx(0.4)


def test_bucket_refills_with_time_up_to_the_burst() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter[str](qps=10.0, burst=2, clock=clock)
    limiter.when("a")
    limiter.when("a")
    assert limiter.when("a") == pytest.approx(0.1)
    clock.step(0.1)  # pays back the reservation
    assert limiter.when("a") == pytest.approx(0.1)
    clock.step(100.0)  # refills to the burst, not beyond
    assert [limiter.when("a") for _ in range(3)] == pytest.approx([0.0, 0.0, 0.1])


def test_bucket_with_infinite_qps_never_waits() -> None:
    limiter = BucketRateLimiter[str](qps=math.inf, burst=1)
    assert {limiter.when("a") for _ in range(1000)} == {0.0}


def test_default_controller_limiter_bursts_100_then_10_qps() -> None:
    clock = FakeClock()
    limiter: RateLimiter[str] = default_controller_rate_limiter(clock=clock)
    assert [limiter.when(f"item{i}") for i in range(100)] == pytest.approx([0.005] * 100)
    beyond = [limiter.when(f"more{k}") for k in range(1, 11)]
    assert beyond == pytest.approx([k * 0.1 for k in range(1, 11)])


def test_default_controller_limiter_per_item_backoff_wins_when_larger() -> None:
    limiter: RateLimiter[str] = default_controller_rate_limiter(clock=FakeClock())
    delays = [limiter.when("a") for _ in range(12)]
    assert delays[-1] == pytest.approx(0.005 * 2**11)
    assert limiter.num_requeues("a") == 12
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0


def test_max_of_advances_every_limiter() -> None:
    fast = ItemExponentialFailureRateLimiter[str](base_delay=0.001, max_delay=1.0)
    slow = ItemFastSlowRateLimiter[str](fast_delay=0.5, slow_delay=9.0, max_fast_attempts=1)
    limiter = MaxOfRateLimiter(fast, slow)
    assert limiter.when("a") == 0.5  # slow dictates
    assert fast.num_requeues("a") == 1  # but fast advanced too
    assert limiter.when("a") == 9.0
    assert fast.num_requeues("a") == 2
    assert slow.num_requeues("a") == 2
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert fast.num_requeues("a") == 0
    assert slow.num_requeues("a") == 0


def test_max_of_num_requeues_is_the_largest() -> None:
    bucket = BucketRateLimiter[str](clock=FakeClock())
    exp = ItemExponentialFailureRateLimiter[str]()
    limiter = MaxOfRateLimiter(bucket, exp)
    for _ in range(3):
        limiter.when("a")
    assert limiter.num_requeues("a") == 3


def test_with_max_wait_clamps_the_delay() -> None:
    inner = ItemExponentialFailureRateLimiter[str](base_delay=1.0, max_delay=1000.0)
    limiter = WithMaxWaitRateLimiter(inner, max_delay=3.0)
    assert [limiter.when("a") for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]
    assert limiter.num_requeues("a") == 4
    limiter.forget("a")
    assert inner.num_requeues("a") == 0


def test_max_items_bounds_per_item_state_least_recent_first() -> None:
    limiter = ItemExponentialFailureRateLimiter[str](max_items=2)
    limiter.when("a")
    limiter.when("b")
    limiter.when("a")
    limiter.when("c")  # evicts "b", the least recently failed
    assert limiter.num_requeues("a") == 2
    assert limiter.num_requeues("b") == 0
    assert limiter.num_requeues("c") == 1


def test_forget_after_expires_history_on_the_clock() -> None:
    clock = FakeClock()
    limiter = ItemFastSlowRateLimiter[str](
        fast_delay=0.1, slow_delay=5.0, max_fast_attempts=1, forget_after=60.0, clock=clock)
    assert limiter.when("a") == 0.1
    clock.step(59.0)
    assert limiter.when("a") == 5.0  # within 60 s of the last failure; refreshes expiry
    clock.step(59.0)
    assert limiter.num_requeues("a") == 2
    clock.step(1.0)
    assert limiter.num_requeues("a") == 0
    assert limiter.when("a") == 0.1


def test_forget_after_with_max_items() -> None:
    clock = FakeClock()
    limiter = ItemExponentialFailureRateLimiter[int](max_items=10, forget_after=1.0, clock=clock)
    for i in range(20):
        limiter.when(i)
    assert sum(limiter.num_requeues(i) for i in range(20)) == 10


@pytest.mark.parametrize("kwargs", [
    {"base_delay": -1.0}, {"base_delay": 2.0, "max_delay": 1.0}, {"max_items": 0},
    {"forget_after": 0.0},
])
def test_exponential_rejects_bad_options(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ItemExponentialFailureRateLimiter[str](**kwargs)  # type: ignore[arg-type]


def test_other_limiters_reject_bad_options() -> None:
    with pytest.raises(ValueError):
        ItemFastSlowRateLimiter[str](fast_delay=-1.0, slow_delay=1.0, max_fast_attempts=1)
    with pytest.raises(ValueError):
        BucketRateLimiter[str](qps=0.0)
    with pytest.raises(ValueError):
        BucketRateLimiter[str](burst=0)
    with pytest.raises(ValueError):
        MaxOfRateLimiter[str]()
    with pytest.raises(ValueError):
        WithMaxWaitRateLimiter(ItemExponentialFailureRateLimiter[str](), max_delay=-1.0)


def test_limiters_satisfy_the_protocol() -> None:
    limiters: list[RateLimiter[str]] = [
        ItemExponentialFailureRateLimiter[str](),
        ItemFastSlowRateLimiter[str](fast_delay=0.0, slow_delay=1.0, max_fast_attempts=1),
        BucketRateLimiter[str](),
        MaxOfRateLimiter[str](BucketRateLimiter[str]()),
        WithMaxWaitRateLimiter(BucketRateLimiter[str](), max_delay=1.0),
        default_controller_rate_limiter(),
        default_item_based_rate_limiter(),
    ]
    for limiter in limiters:
        assert limiter.when("a") >= 0.0
