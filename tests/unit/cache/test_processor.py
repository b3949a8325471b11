"""The per-handler buffer and delivery thread (cache/_processor.py)."""

from __future__ import annotations

import threading
from typing import Any

from pycontroller._util._clock import REAL_CLOCK
from pycontroller._util._wait import wait_for
from pycontroller.cache._processor import _ADD, _DELETE, _UPDATE, _Listener

PATIENCE = 20.0


def listener(calls: list[tuple[Any, ...]], gate: threading.Event | None = None) -> _Listener:
    def on_add(obj: Any, initial: bool) -> None:
        if gate is not None:
            assert gate.wait(PATIENCE)
        calls.append(("add", obj, initial))

    return _Listener("test", on_add=on_add,
                     on_update=lambda old, new: calls.append(("update", old, new)),
                     on_delete=lambda obj: calls.append(("delete", obj)),
                     requested_resync=0, resync_period=0, clock=REAL_CLOCK)


def test_batches_are_delivered_in_order_and_counted_until_delivered() -> None:
    calls: list[tuple[Any, ...]] = []
    gate = threading.Event()
    x = listener(calls, gate)
    x.push_all([(_ADD, "a", True), (_ADD, "b", True)], True)
    x.push(_UPDATE, "a", "a2")
    x.push_all([(_DELETE, "b", None)], False)
    assert x.pending() == 4 and x.initial_pending() == 2
    x.start()
    gate.set()
    wait_for(lambda: len(calls) == 4, timeout=PATIENCE, interval=0.005)
    assert calls == [("add", "a", True), ("add", "b", True), ("update", "a", "a2"),
                     ("delete", "b")]
    assert x.pending() == 0 and x.initial_pending() == 0
    x.push(_ADD, "c", False)  # the thread went back to waiting: a push wakes it
    wait_for(lambda: len(calls) == 5, timeout=PATIENCE, interval=0.005)
    x.stop()
    x.join(PATIENCE)


def test_stop_during_a_drain_drops_the_rest_after_the_running_call() -> None:
    calls: list[tuple[Any, ...]] = []
    gate = threading.Event()
    x = listener(calls, gate)
    x.push_all([(_ADD, str(i), True) for i in range(100)], True)
    x.start()
    wait_for(lambda: x.pending() == 99, timeout=PATIENCE, interval=0.005)  # 1st call runs
    x.stop()
    gate.set()
    x.join(PATIENCE)
    assert calls == [("add", "0", True)]
    assert x.pending() == 0 and x.initial_pending() == 0
    x.push(_ADD, "late", False)  # ignored once stopped
    assert x.pending() == 0


def test_pushes_while_the_handler_runs_are_delivered_without_a_wake_up() -> None:
    """The producer notifies only an idle thread: what arrives during a call (the thread
    is busy, not waiting) is found by the drain, and a push after the drain wakes it."""
    calls: list[tuple[Any, ...]] = []
    gate = threading.Event()
    x = listener(calls, gate)
    x.start()
    x.push(_ADD, "a", True)
    wait_for(lambda: x.pending() == 0, timeout=PATIENCE, interval=0.005)  # "a" is running
    x.push_all([(_UPDATE, "a", "a2"), (_ADD, "b", True)], True)
    x.push(_DELETE, "a")
    assert x.initial_pending() == 2
    gate.set()
    wait_for(lambda: len(calls) == 4, timeout=PATIENCE, interval=0.005)
    assert calls == [("add", "a", True), ("update", "a", "a2"), ("add", "b", True),
                     ("delete", "a")]
    wait_for(lambda: x.initial_pending() == 0, timeout=PATIENCE, interval=0.005)
    for i in range(3):  # idle again between pushes: each one wakes it
        wait_for(lambda: x._idle, timeout=PATIENCE, interval=0.005)
        x.push(_ADD, f"late{i}", False)
        wait_for(lambda i=i: calls[-1] == ("add", f"late{i}", False),  # type: ignore[misc]
                 timeout=PATIENCE, interval=0.005)
    x.stop()
    x.join(PATIENCE)
