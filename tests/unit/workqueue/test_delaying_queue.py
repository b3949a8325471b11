"""DelayingQueue: add_after on a heap (spec §5.2, checklist 62)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pycontroller.errors import ShutDownError
from pycontroller.testing._fake_clock import FakeClock
from pycontroller.workqueue import DelayingQueue


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def q(clock: FakeClock) -> Iterator[DelayingQueue[str]]:
    queue = DelayingQueue[str](name="test", clock=clock)
    yield queue
    queue.shut_down()


def settle(clock: FakeClock) -> None:
    """Wait until the loop thread has acted on the clock's current time."""
    assert clock.wait_for_waiters(1, after_step=True), "delaying loop did not settle"


def drain(q: DelayingQueue[str]) -> list[str]:
    out = []
    while (item := q.get(timeout=0)) is not None:
        out.append(item)
        q.done(item)
    return out


@pytest.mark.parametrize("delays", [(10.0, 1.0), (1.0, 10.0)], ids=["later-first", "earlier-first"])
def test_two_add_afters_deliver_once_at_the_earlier_time(
    q: DelayingQueue[str], clock: FakeClock, delays: tuple[float, float]
) -> None:
    for d in delays:
        q.add_after("x", d)
    settle(clock)
    clock.step(0.999)
    settle(clock)
    assert len(q) == 0
    clock.step(0.001)
    settle(clock)
    assert drain(q) == ["x"]
    clock.step(20.0)
    settle(clock)
    assert len(q) == 0


def test_item_is_not_added_before_its_time(q: DelayingQueue[str], clock: FakeClock) -> None:
    q.add_after("a", 5.0)
    settle(clock)
    for _ in range(4):
        clock.step(1.0)
        settle(clock)
        assert len(q) == 0
    clock.step(1.0)
    assert q.get() == "a"  # blocks until the loop moves it


def test_ready_items_come_out_in_ready_time_order(
    q: DelayingQueue[str], clock: FakeClock
) -> None:
    q.add_after("c", 3.0)
    q.add_after("a", 1.0)
    q.add_after("b", 2.0)
    q.add_after("a2", 1.0)
    clock.step(5.0)
    settle(clock)
    assert drain(q) == ["a", "a2", "b", "c"]


def test_non_positive_delay_adds_at_once_without_a_thread(q: DelayingQueue[str]) -> None:
    q.add_after("a", 0.0)
    q.add_after("b", -1.0)
    assert len(q) == 2
    assert not any(t.name.startswith("pycontroller-delaying-queue") for t in threading.enumerate())


def test_ready_item_is_deduplicated_by_the_queue(q: DelayingQueue[str], clock: FakeClock) -> None:
    q.add("a")
    q.add_after("a", 1.0)
    clock.step(1.0)
    settle(clock)
    assert drain(q) == ["a"]


def test_delayed_item_while_processing_is_handed_out_after_done(
    q: DelayingQueue[str], clock: FakeClock
) -> None:
    q.add("a")
    assert q.get() == "a"
    q.add_after("a", 1.0)
    clock.step(1.0)
    settle(clock)
    assert len(q) == 0
    q.done("a")
    assert drain(q) == ["a"]


def test_item_can_wait_again_after_it_was_delivered(
    q: DelayingQueue[str], clock: FakeClock
) -> None:
    q.add_after("a", 1.0)
    clock.step(1.0)
    settle(clock)
    assert drain(q) == ["a"]
    q.add_after("a", 1.0)
    settle(clock)
    assert len(q) == 0
    clock.step(1.0)
    settle(clock)
    assert drain(q) == ["a"]


def test_many_items_ready_at_once_are_all_delivered(
    q: DelayingQueue[str], clock: FakeClock
) -> None:
    keys = [f"k{i:05d}" for i in range(2500)]  # more than one batch of moves
    for i, k in enumerate(keys):
        q.add_after(k, 1.0 + i * 1e-6)
    clock.step(2.0)
    got = [q.get() for _ in keys]
    assert got == keys


def test_moving_items_earlier_many_times_keeps_the_heap_small(
    q: DelayingQueue[str], clock: FakeClock
) -> None:
    for i in range(1000):
        q.add_after("a", 1000.0 - i)
        q.add_after("b", 1000.0 - i)
    assert len(q._heap) < 200  # stale entries were compacted away (white-box)
    clock.step(1.0)
    settle(clock)
    assert drain(q) == ["a", "b"]


def test_loop_thread_is_named_daemon_and_joined_by_shut_down(clock: FakeClock) -> None:
    q = DelayingQueue[str](name="pods", clock=clock)
    q.add_after("a", 1.0)
    threads = [t for t in threading.enumerate() if t.name == "pycontroller-delaying-queue-pods"]
    assert len(threads) == 1
    assert threads[0].daemon
    q.shut_down()
    assert not threads[0].is_alive()


def test_shutdown_drops_waiting_items_and_ignores_add_after(
    q: DelayingQueue[str], clock: FakeClock
) -> None:
    q.add_after("a", 1.0)
    q.shut_down()
    q.add_after("b", 0.0)
    q.add_after("c", 1.0)
    clock.step(5.0)
    with pytest.raises(ShutDownError):
        q.get()


def test_drain_stops_the_loop_and_drops_waiting_items(
    q: DelayingQueue[str], clock: FakeClock
) -> None:
    q.add_after("a", 1.0)
    q.add("b")
    assert q.get() == "b"
    q.done("b")
    assert q.shut_down_with_drain(timeout=1.0) is True
    assert not any(t.name.startswith("pycontroller-delaying-queue") for t in threading.enumerate())


class RecordingClock:
    """Time stands still; ``wait`` records its timeout and returns only when notified.

    Without the real-time cap of ``FakeClock.wait``, the loop can only re-compute its
    timeout if something wakes it.
    """

    def __init__(self) -> None:
        self.timeouts: list[float | None] = []
        self._cond = threading.Condition()

    def now(self) -> float:
        return 0.0

    def wait(self, cond: threading.Condition, timeout: float | None) -> None:
        with self._cond:
            self.timeouts.append(timeout)
            self._cond.notify_all()
        cond.wait()

    def sleep(self, seconds: float, stop: threading.Event | None = None) -> bool:
        raise NotImplementedError

    def wait_for_timeout(self, value: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: value in self.timeouts, 5.0)


def test_an_earlier_item_wakes_the_loop_to_wait_for_it() -> None:
    clock = RecordingClock()
    q = DelayingQueue[str](clock=clock)
    try:
        q.add_after("late", 5.0)
        assert clock.wait_for_timeout(5.0)
        q.add_after("early", 2.0)  # no time passes: only the wake-up can shorten the wait
        assert clock.wait_for_timeout(2.0)
    finally:
        q.shut_down()


def test_an_item_later_than_the_head_does_not_wake_the_loop() -> None:
    clock = RecordingClock()
    q = DelayingQueue[str](clock=clock)
    try:
        q.add_after("early", 2.0)
        assert clock.wait_for_timeout(2.0)
        waits = len(clock.timeouts)
        q.add_after("late", 5.0)
        q.add_after("early", 3.0)  # a later time for a waiting item is ignored too
        assert len(q) == 0
        assert len(clock.timeouts) == waits  # the loop was not woken
    finally:
        q.shut_down()


@pytest.mark.parametrize("delay", [float("nan"), "1", None], ids=["nan", "str", "none"])
def test_a_delay_that_is_not_a_number_is_refused(q: DelayingQueue[str], clock: FakeClock,
                                                  delay: object) -> None:
    # A NaN ready time never compares <= now: at the heap's head it would hold back every
    # item behind it, for good.
    with pytest.raises((ValueError, TypeError), match="delay"):
        q.add_after("bad", delay)  # type: ignore[arg-type]
    q.add_after("good", 1.0)
    settle(clock)
    clock.step(1.0)
    settle(clock)
    assert drain(q) == ["good"]
