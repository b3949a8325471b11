"""WorkQueue: dirty/processing semantics, shutdown and drain (spec §5.1, checklist 58-61)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

import pytest

import pycontroller.workqueue as workqueue_pkg
from pycontroller.errors import ShutDownError
from pycontroller.testing._fake_clock import FakeClock
from pycontroller.workqueue import DelayingQueue, RateLimitingQueue, WorkQueue

T = TypeVar("T")
JOIN = 5.0  # real seconds a helper thread may take; only reached when a test fails


class Call(Generic[T]):
    """Run ``fn`` on a helper thread; ``result()`` joins it (bounded) and returns/raises."""

    def __init__(self, fn: Callable[[], T]) -> None:
        self._fn = fn
        self._value: T | None = None
        self._error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:
            self._error = exc

    def result(self) -> T | None:
        self.thread.join(JOIN)
        assert not self.thread.is_alive(), "helper thread did not finish"
        if self._error is not None:
            raise self._error
        return self._value


AnyQueue = WorkQueue[str] | DelayingQueue[str] | RateLimitingQueue[str]
Factory = Callable[[FakeClock], AnyQueue]

# Every queue class must honour the basic contract.
QUEUES: list[Factory] = [
    lambda c: WorkQueue[str](clock=c),
    lambda c: DelayingQueue[str](clock=c),
    lambda c: RateLimitingQueue[str](clock=c),
]


@pytest.fixture(params=QUEUES, ids=["WorkQueue", "DelayingQueue", "RateLimitingQueue"])
def make(request: pytest.FixtureRequest) -> Factory:
    factory: Factory = request.param
    return factory


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def q(make: Factory, clock: FakeClock) -> Iterator[AnyQueue]:
    queue = make(clock)
    yield queue
    queue.shut_down()


def test_adding_three_times_before_get_yields_one_get(q: AnyQueue) -> None:
    for _ in range(3):
        q.add("a")
    assert len(q) == 1
    assert q.get() == "a"
    assert q.get(timeout=0) is None
    assert len(q) == 0


def test_distinct_keys_come_out_in_first_add_order(q: AnyQueue) -> None:
    for k in ["c", "a", "b", "a", "c"]:
        q.add(k)
    assert [q.get(), q.get(), q.get()] == ["c", "a", "b"]


def test_add_during_processing_is_handed_out_again_after_done(q: AnyQueue) -> None:
    q.add("a")
    assert q.get() == "a"
    q.add("a")
    q.add("a")
    # Not queued while processing: no second worker can get it.
    assert len(q) == 0
    assert q.get(timeout=0) is None
    q.done("a")
    assert len(q) == 1
    assert q.get() == "a"
    q.done("a")
    assert q.get(timeout=0) is None


def test_item_readded_during_processing_goes_to_the_back(q: AnyQueue) -> None:
    q.add("a")
    assert q.get() == "a"
    q.add("b")
    q.add("a")
    q.done("a")
    assert [q.get(), q.get()] == ["b", "a"]


def test_done_for_an_item_not_being_processed_is_ignored(q: AnyQueue) -> None:
    q.add("a")
    q.done("a")  # queued, not processing: must not queue it a second time
    assert len(q) == 1
    assert q.get() == "a"
    q.done("a")
    q.done("a")  # a second done is harmless
    assert len(q) == 0


def test_forgetting_done_means_never_processed_again(q: AnyQueue) -> None:
    q.add("a")
    assert q.get() == "a"
    q.add("a")
    assert q.get(timeout=0) is None


def test_len_counts_queued_items_only(q: AnyQueue) -> None:
    q.add("a")
    q.add("b")
    assert len(q) == 2
    q.get()
    assert len(q) == 1


def test_get_blocks_until_an_item_is_added(q: AnyQueue, clock: FakeClock) -> None:
    call = Call(q.get)
    assert clock.wait_for_waiters(1)
    q.add("a")
    assert call.result() == "a"


def test_one_add_wakes_one_of_many_getters(q: AnyQueue, clock: FakeClock) -> None:
    calls = [Call(q.get) for _ in range(3)]
    assert clock.wait_for_waiters(3)
    for k in "abc":
        q.add(k)
    assert sorted(str(c.result()) for c in calls) == ["a", "b", "c"]


def test_get_with_timeout_returns_none_after_clock_time(
    q: AnyQueue, clock: FakeClock
) -> None:
    assert q.get(timeout=0) is None
    call = Call(lambda: q.get(timeout=5.0))
    assert clock.wait_for_waiters(1)
    clock.step(4.9)
    assert clock.wait_for_waiters(1, after_step=True)
    assert call.thread.is_alive()
    clock.step(0.1)
    assert call.result() is None


def test_after_shutdown_remaining_items_are_handed_out_then_shutdown(
    q: AnyQueue,
) -> None:
    q.add("a")
    q.add("b")
    q.shut_down()
    assert q.shutting_down()
    q.add("c")  # ignored
    assert len(q) == 2
    assert q.get() == "a"
    assert q.get() == "b"
    with pytest.raises(ShutDownError):
        q.get()
    with pytest.raises(ShutDownError):
        q.get(timeout=1.0)


def test_shutdown_wakes_blocked_getters(q: AnyQueue, clock: FakeClock) -> None:
    calls = [Call(q.get) for _ in range(3)]
    assert clock.wait_for_waiters(3)
    q.shut_down()
    for call in calls:
        with pytest.raises(ShutDownError):
            call.result()


def test_dirty_item_is_still_requeued_by_done_after_shutdown(q: AnyQueue) -> None:
    q.add("a")
    assert q.get() == "a"
    q.add("a")
    q.shut_down()
    q.done("a")
    assert q.get() == "a"
    q.done("a")
    with pytest.raises(ShutDownError):
        q.get()


def test_shut_down_is_idempotent(q: AnyQueue) -> None:
    assert not q.shutting_down()
    q.shut_down()
    q.shut_down()
    assert q.shutting_down()


def test_shut_down_with_drain_blocks_until_in_flight_items_are_done(
    q: AnyQueue, clock: FakeClock
) -> None:
    q.add("a")
    q.add("b")
    assert q.get() == "a"
    assert q.get() == "b"
    drain = Call(q.shut_down_with_drain)
    assert clock.wait_for_waiters(1)
    assert q.shutting_down()
    q.done("a")
    assert clock.wait_for_waiters(1, after_step=False)
    assert drain.thread.is_alive()
    q.done("b")
    assert drain.result() is True


def test_drain_also_waits_for_items_requeued_by_done(
    q: AnyQueue, clock: FakeClock
) -> None:
    # Client-go returns here once processing is empty (kubernetes PR #141079); we wait
    # for the re-added item to be processed too.
    q.add("a")
    assert q.get() == "a"
    q.add("a")
    drain = Call(q.shut_down_with_drain)
    assert clock.wait_for_waiters(1)
    q.done("a")  # "a" is queued again
    assert len(q) == 1
    assert drain.thread.is_alive()
    assert q.get() == "a"
    q.done("a")
    assert drain.result() is True
    with pytest.raises(ShutDownError):
        q.get()


def test_drain_waits_for_queued_items_until_workers_take_them(
    q: AnyQueue, clock: FakeClock
) -> None:
    q.add("a")
    drain = Call(q.shut_down_with_drain)
    assert clock.wait_for_waiters(1)
    assert q.get() == "a"
    q.done("a")
    assert drain.result() is True


def test_drain_with_nothing_to_do_returns_at_once(q: AnyQueue) -> None:
    assert q.shut_down_with_drain() is True
    assert q.shutting_down()


def test_drain_timeout_is_measured_on_the_queue_clock(
    q: AnyQueue, clock: FakeClock
) -> None:
    q.add("a")
    q.get()
    drain = Call(lambda: q.shut_down_with_drain(timeout=10.0))
    assert clock.wait_for_waiters(1)
    clock.step(10.0)
    assert drain.result() is False


def test_shut_down_aborts_a_waiting_drain(q: AnyQueue, clock: FakeClock) -> None:
    q.add("a")
    q.get()
    drain = Call(q.shut_down_with_drain)
    assert clock.wait_for_waiters(1)
    q.shut_down()
    assert drain.result() is False


def test_queue_name_and_generic_keys() -> None:
    q = WorkQueue[tuple[str, str]](name="")
    q.add(("ns", "a"))
    assert q.get() == ("ns", "a")
    assert q.name == ""
    q.shut_down()


def test_public_api_is_exactly_all() -> None:
    public = {n for n in dir(workqueue_pkg) if not n.startswith(("_", "@"))} - {"annotations"}
    assert public == set(workqueue_pkg.__all__)
    for name in workqueue_pkg.__all__:
        assert getattr(workqueue_pkg, name).__module__ == "pycontroller.workqueue"
