"""The read-your-own-writes tracker with a fake clock and a dict as the cache."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from pycontroller import CONFIGMAPS, PODS, Resource
from pycontroller.controller._read_your_writes import (
    ReadYourWrites,
    at_least,
    compare_resource_versions,
    parse_resource_version,
)
from pycontroller.testing._fake_clock import FakeClock


class Count:
    def __init__(self) -> None:
        self.n = 0.0

    def inc(self, amount: float = 1.0, /) -> None:
        self.n += amount


def cm(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


@pytest.mark.parametrize(("rv", "value"), [
    ("1", 1), ("123", 123), ("", None), ("0", None), ("007", None), ("12a", None),
    ("-1", None), ("١٢", None), (None, None)])
def test_parse_follows_kep_5504(rv: Any, value: int | None) -> None:
    assert parse_resource_version(rv) == value


def test_compare_and_fallback_to_equality() -> None:
    assert compare_resource_versions("9", "10") == -1
    assert compare_resource_versions("10", "10") == 0
    assert compare_resource_versions("11", "10") == 1
    assert compare_resource_versions("abc", "10") is None
    assert at_least("10", "9") and not at_least("9", "10")
    assert at_least("opaque", "opaque") and not at_least("opaque-2", "opaque")


class World:
    def __init__(self) -> None:
        self.cache: dict[tuple[Resource, str], dict[str, Any]] = {}
        self.clock = FakeClock()
        self.waits, self.timeouts = Count(), Count()
        self.tracker = ReadYourWrites(
            cached=lambda res, key: self.cache.get((res, key)),
            watched=lambda res: res is CONFIGMAPS, clock=self.clock, timeout=5.0,
            waits=self.waits, timeouts=self.timeouts)

    def deliver(self, obj: dict[str, Any]) -> None:
        self.cache[(CONFIGMAPS, "ns/" + obj["metadata"]["name"])] = obj
        self.tracker.observe(CONFIGMAPS, obj, False)


def start_wait(w: World, key: str) -> tuple[threading.Thread, list[bool]]:
    """``w.tracker.wait(key)`` in a thread; its result lands in the returned list."""
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(w.tracker.wait(key)))
    waiter.start()
    return waiter, result


def blocked_wait(w: World, key: str) -> tuple[threading.Thread, list[bool]]:
    """``start_wait``, checked to be blocked (on the clock) with no result yet."""
    waiter, result = start_wait(w, key)
    assert w.clock.wait_for_waiters()
    assert result == []
    return waiter, result


def test_nothing_written_means_no_wait() -> None:
    w = World()
    assert w.tracker.wait("ns/a") and w.waits.n == 0


def test_wait_returns_when_the_informer_delivers_the_written_version() -> None:
    w = World()
    w.deliver(cm("a", "5"))
    w.tracker.record("ns/a", CONFIGMAPS, cm("a", "7"), "ns/a")
    waiter, result = blocked_wait(w, "ns/a")
    w.deliver(cm("a", "6"))  # not yet
    assert waiter.is_alive() or result == []
    w.deliver(cm("a", "8"))  # newer than written: caught up
    waiter.join(5)
    assert result == [True] and w.waits.n == 1 and w.timeouts.n == 0
    assert len(w.tracker) == 0  # dropped once seen


def test_wait_is_bounded_and_counts_the_timeout() -> None:
    w = World()
    w.tracker.record("ns/a", CONFIGMAPS, cm("a", "7"), "ns/a")
    waiter, result = start_wait(w, "ns/a")
    while waiter.is_alive():
        assert w.clock.wait_for_waiters()
        w.clock.step(1.0)
        waiter.join(0.01)
    assert result == [False] and w.timeouts.n == 1 and len(w.tracker) == 0


def test_already_cached_writes_and_unwatched_resources_are_not_recorded() -> None:
    w = World()
    w.deliver(cm("a", "7"))
    w.tracker.record("ns/a", CONFIGMAPS, cm("a", "7"), "ns/a")  # e.g. a no-op patch
    w.tracker.record("ns/a", PODS, cm("p", "9"), "ns/p")
    assert len(w.tracker) == 0


def test_delete_waits_until_the_cache_drops_the_object() -> None:
    w = World()
    w.deliver(cm("a", "7"))
    w.tracker.record("ns/a", CONFIGMAPS, None, "ns/a", deleted=True)
    assert len(w.tracker) == 1
    del w.cache[(CONFIGMAPS, "ns/a")]
    assert w.tracker.wait("ns/a") and w.waits.n == 0  # the cache check suffices


def test_a_write_whose_delete_event_came_first_does_not_wait() -> None:
    """Removing the last finalizer deletes the object: its DELETED event can reach the
    informer before the write is recorded, and the object never appears at that version."""
    w = World()
    w.deliver(cm("a", "7"))
    del w.cache[(CONFIGMAPS, "ns/a")]
    w.tracker.observe(CONFIGMAPS, cm("a", "9"), True)  # the delete, at its final version
    w.tracker.record("ns/a", CONFIGMAPS, cm("a", "8"), "ns/a")  # the patch's answer, late
    assert w.tracker.wait("ns/a") and w.waits.n == 0 and len(w.tracker) == 0


def test_a_missing_object_still_waits_while_the_informer_is_behind_the_write() -> None:
    w = World()
    w.deliver(cm("b", "5"))  # the informer has seen up to 5 only
    w.tracker.record("ns/a", CONFIGMAPS, cm("a", "8"), "ns/a")  # created at 8, not cached
    waiter, result = blocked_wait(w, "ns/a")
    w.deliver(cm("a", "8"))
    waiter.join(5)
    assert result == [True] and w.timeouts.n == 0


def test_writes_of_other_keys_do_not_delay_a_key_and_old_entries_expire() -> None:
    w = World()
    w.tracker.record("ns/b", CONFIGMAPS, cm("b", "7"), "ns/b")
    assert w.tracker.wait("ns/a") and w.waits.n == 0
    w.clock.step(3600)
    w.tracker.record("ns/c", CONFIGMAPS, cm("c", "9"), "ns/c")
    assert len(w.tracker) == 1  # ns/b expired (never delivered), ns/c is kept


def test_an_update_delivered_after_a_delete_was_written_is_not_the_delete() -> None:
    """A MODIFIED event from before our DELETE, delivered late, leaves the object cached:
    the expectation "gone" must stay until the DELETED event (or the cache drops it)."""
    w = World()
    w.deliver(cm("a", "5"))
    w.tracker.record("ns/k", CONFIGMAPS, None, "ns/a", deleted=True)  # deleted at once
    w.deliver(cm("a", "6"))  # someone's update before our delete, delivered late
    assert len(w.tracker) == 1
    del w.cache[(CONFIGMAPS, "ns/a")]
    w.tracker.observe(CONFIGMAPS, cm("a", "7"), True)
    assert len(w.tracker) == 0


def test_the_delete_event_of_an_older_object_is_not_the_new_one_we_created() -> None:
    """Delete and re-create under the same name: the DELETED event of the old object (at
    a version below our create) must not satisfy the expectation of the new one."""
    w = World()
    w.deliver(cm("a", "5"))
    w.tracker.record("ns/k", CONFIGMAPS, None, "ns/a", deleted=True)
    w.tracker.record("ns/k", CONFIGMAPS, cm("a", "9"), "ns/a")  # re-created at 9
    del w.cache[(CONFIGMAPS, "ns/a")]
    w.tracker.observe(CONFIGMAPS, cm("a", "8"), True)  # the old one's deletion, at 8
    assert len(w.tracker) == 1
    # The cache holds no "a" yet: a reconcile now would create it again.
    waiter, result = blocked_wait(w, "ns/k")
    w.deliver(cm("a", "9"))
    waiter.join(5)
    assert result == [True] and w.timeouts.n == 0


def test_records_of_one_object_keep_the_newest_version_whatever_their_order() -> None:
    """Two workers write one object; the one that got the older version records last."""
    w = World()
    w.tracker.record("ns/j", CONFIGMAPS, cm("x", "105"), "ns/x")
    w.tracker.record("ns/k", CONFIGMAPS, cm("x", "100"), "ns/x")
    w.deliver(cm("x", "100"))
    assert len(w.tracker) == 1  # ns/j's write (105) is not cached yet
    w.deliver(cm("x", "105"))
    assert len(w.tracker) == 0
    assert w.tracker.wait("ns/j") and w.tracker.wait("ns/k") and w.waits.n == 0
