"""Reflector behaviour against the in-memory FakeListerWatcher (spec checklist 1-23)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from mapping_helpers import ReadOnly
from stream_helpers import GatedStream, expire_continuations

from pycontroller._util._backoff import Backoff
from pycontroller._util._wait import wait_for
from pycontroller.cache._reflector import Reflector
from pycontroller.client._watch import WatchDecodeError, WatchEvent, WatchStalledError
from pycontroller.errors import (
    ResourceExpiredError,
    ServerError,
    TooManyRequestsError,
    TransportError,
)
from pycontroller.testing import FakeClock
from pycontroller.testing._fake_lister_watcher import FakeListerWatcher


class RecordingStore:
    """Records what the reflector writes."""

    def __init__(self) -> None:
        self.ops: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def _rec(self, op: str, arg: Any) -> None:
        with self.lock:
            self.ops.append((op, arg))

    def add(self, obj: Any) -> None:
        self._rec("add", obj["metadata"]["name"])

    def update(self, obj: Any) -> None:
        self._rec("update", obj["metadata"]["name"])

    def delete(self, obj: Any) -> None:
        self._rec("delete", obj["metadata"]["name"])

    def replace(self, objects: Iterable[Any], resource_version: str) -> None:
        self._rec("replace", (sorted(o["metadata"]["name"] for o in objects), resource_version))

    def resync(self) -> None:
        self._rec("resync", None)

    def count(self, op: str) -> int:
        with self.lock:
            return sum(1 for o, _ in self.ops if o == op)


def pod(name: str, ns: str = "default") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": ns}}


Runner = Callable[..., tuple[Reflector, RecordingStore]]
PATIENCE = 20.0  # real seconds to wait for a condition: generous for a loaded CI machine


@pytest.fixture
def lw() -> FakeListerWatcher:
    return FakeListerWatcher()


@pytest.fixture
def run_reflector(lw: FakeListerWatcher) -> Iterator[Runner]:
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(**kwargs: Any) -> tuple[Reflector, RecordingStore]:
        store = RecordingStore()
        kwargs.setdefault("backoff", Backoff(initial=0.001, cap=0.002))
        kwargs.setdefault("expected_kind", "Pod")
        reflector = Reflector(lw, store, **kwargs)
        thread = threading.Thread(target=reflector.run, args=(stop,), name="pycontroller-test")
        thread.start()
        threads.append(thread)
        return reflector, store

    yield start
    stop.set()
    lw.close_watches()
    for thread in threads:
        thread.join(PATIENCE)
        assert not thread.is_alive()


def lists(lw: FakeListerWatcher) -> list[dict[str, Any]]:
    return [c.options for c in lw.calls if c.verb == "list"]


def watches(lw: FakeListerWatcher) -> list[dict[str, Any]]:
    return [c.options for c in lw.calls if c.verb == "watch" and
            not c.options["send_initial_events"]]


def test_first_list_is_rv0_limit500_then_watch_from_list_rv(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    lw.upsert(pod("a"))
    reflector, store = run_reflector()
    assert lw.wait_for_watches(2)  # the WatchList attempt, then the plain watch
    first = lists(lw)[0]
    assert (first["resource_version"], first["limit"]) == ("0", 500)
    assert store.ops[0] == ("replace", (["a"], "101"))
    watch = watches(lw)[0]
    assert watch["resource_version"] == "101"
    assert 300 <= watch["timeout_seconds"] <= 599
    assert reflector.last_resource_version == "101"


def test_watchlist_rejected_falls_back_to_list_and_is_remembered(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    run_reflector()
    assert lw.wait_for_watches(2)
    attempt = lw.calls[0]
    assert attempt.verb == "watch" and attempt.options["send_initial_events"] is True
    assert attempt.options["resource_version_match"] == "NotOlderThan"
    assert lw.calls[1].verb == "list"
    lw.close_watches()
    assert lw.wait_for_watches(3)
    assert sum(1 for c in lw.calls if c.options.get("send_initial_events")) == 1


def test_events_reach_store_and_advance_rv(lw: FakeListerWatcher, run_reflector: Runner) -> None:
    reflector, store = run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    lw.upsert(pod("a"))
    lw.upsert(pod("a"))
    lw.remove("default", "a")
    wait_for(lambda: store.count("delete") == 1, timeout=5)
    assert [op for op, _ in store.ops[1:]] == ["add", "update", "delete"]
    assert reflector.last_resource_version == "103"


def test_bookmark_advances_rv_without_store_change(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    reflector, store = run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    rv = lw.bookmark()
    wait_for(lambda: reflector.last_resource_version == rv, timeout=5)
    assert [op for op, _ in store.ops] == ["replace"]


def test_wrong_kind_is_skipped_and_does_not_advance_rv(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    reflector, store = run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    lw.emit(WatchEvent("ADDED", {"kind": "Secret", "metadata": {"name": "s",
                                                                 "resourceVersion": "999"}}))
    lw.emit(WatchEvent("ADDED", {"kind": "Pod", "metadata": {"name": "p",
                                                              "resourceVersion": "150"}}))
    wait_for(lambda: store.count("add") == 1, timeout=5)
    assert reflector.last_resource_version == "150"


def test_an_event_object_that_is_a_mapping_but_no_dict_is_applied(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    reflector, store = run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    obj = ReadOnly({"kind": "Pod", "metadata": {"name": "m", "resourceVersion": "150"}})
    lw.emit(WatchEvent("ADDED", obj))  # type: ignore[arg-type]
    wait_for(lambda: store.count("add") == 1, timeout=5)
    assert reflector.last_resource_version == "150"
    assert len(lists(lw)) == 1  # no relist


def test_normal_watch_end_rewatches_from_last_rv_without_list(
    lw: FakeListerWatcher, run_reflector: Runner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("pycontroller.cache._reflector.SHORT_WATCH", 0.0)
    run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    lw.upsert(pod("a"))
    lw.close_watches()
    assert lw.wait_for_watches(2)
    assert len(lists(lw)) == 1
    assert watches(lw)[1]["resource_version"] == "101"


def test_short_watch_without_events_relists(lw: FakeListerWatcher, run_reflector: Runner) -> None:
    run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    lw.close_watches()  # within a second, no events
    wait_for(lambda: len(lists(lw)) == 2, timeout=5)


def test_410_relists_at_last_rv_unpaginated_then_empty_rv(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    lw.upsert(pod("a"))
    run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    lw.list_errors.append(ResourceExpiredError(410, "Expired", "too old"))
    lw.emit(WatchEvent("ERROR", {"kind": "Status", "code": 410, "reason": "Expired"}))
    wait_for(lambda: len(lists(lw)) == 3, timeout=5)
    relist, fallback = lists(lw)[1], lists(lw)[2]
    assert (relist["resource_version"], relist["limit"]) == ("101", None)
    assert (fallback["resource_version"], fallback["limit"]) == ("", 500)


def test_too_large_resource_version_retries_with_empty_rv(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    lw.list_errors.append(ServerError(504, "Timeout", "Too large resource version: 5"))
    run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    assert [c["resource_version"] for c in lists(lw)] == ["0", ""]


def test_pagination_continues_without_rv_and_stays_paginated(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    for i in range(5):
        lw.upsert(pod(f"p{i}"))
    lw.page_size_cap = 2
    _, store = run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    first_sync = lists(lw)
    assert len(first_sync) == 3
    assert all(c["resource_version"] is None for c in first_sync[1:])
    assert store.ops[0] == ("replace", (["p0", "p1", "p2", "p3", "p4"], "105"))
    lw.emit(WatchDecodeError("garbage"))  # forces a relist at an exact RV
    wait_for(lambda: len(lists(lw)) >= 4, timeout=5)
    assert lists(lw)[3]["limit"] == 500  # sticky: the RV=0 list was paginated


def test_expired_continuation_does_one_unpaginated_list(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    for i in range(3):
        lw.upsert(pod(f"p{i}"))
    lw.page_size_cap = 2
    expire_continuations(lw)
    _, store = run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    third = lists(lw)[2]
    assert (third["resource_version"], third["limit"], third["continue_token"]) == ("0", None,
                                                                                      None)
    assert store.ops[0][1][0] == ["p0", "p1", "p2"]


@pytest.mark.parametrize("error", [
    TransportError("connection refused"),
    TooManyRequestsError(429, "TooManyRequests", "slow down"),
])
def test_watch_open_refused_or_throttled_rewatches_without_list(
    lw: FakeListerWatcher, run_reflector: Runner, error: Exception
) -> None:
    lw.watch_errors.append(error)
    run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(2)
    assert len(lists(lw)) == 1


def test_stalled_stream_rewatches_without_list(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    lw.upsert(pod("a"))
    lw.emit(WatchStalledError("silent"))
    assert lw.wait_for_watches(2)
    assert len(lists(lw)) == 1
    assert watches(lw)[1]["resource_version"] == "101"


def test_malformed_line_relists(lw: FakeListerWatcher, run_reflector: Runner) -> None:
    run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    lw.emit(WatchDecodeError("bad line"))
    wait_for(lambda: len(lists(lw)) == 2, timeout=5)


def test_store_error_does_not_stop_the_watch(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    _, store = run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    boom = {"n": 0}
    real_add = store.add

    def failing_add(obj: Any) -> None:
        boom["n"] += 1
        if boom["n"] == 1:
            raise RuntimeError("store bug")
        real_add(obj)

    store.add = failing_add  # type: ignore[method-assign]
    lw.upsert(pod("a"))
    lw.upsert(pod("b"))
    wait_for(lambda: store.count("add") == 1, timeout=5)
    assert len(watches(lw)) == 1


def test_resync_calls_store_each_period(lw: FakeListerWatcher, run_reflector: Runner) -> None:
    clock = FakeClock()
    reflector, store = run_reflector(use_watch_list=False, resync_period=30.0, clock=clock,
                                     backoff=Backoff(initial=0.001, cap=0.002, clock=clock))
    wait_for(reflector._watching.is_set, timeout=5)
    for expected in (1, 2):
        assert clock.wait_for_waiters(1)  # the resync timer is asleep again
        clock.step(30.0)
        wait_for(lambda e=expected: store.count("resync") == e, timeout=5)  # type: ignore[misc]


def test_should_resync_false_skips(lw: FakeListerWatcher, run_reflector: Runner) -> None:
    clock = FakeClock()
    asked = threading.Event()

    def never() -> bool:
        asked.set()
        return False

    reflector, store = run_reflector(
        use_watch_list=False, resync_period=5.0, should_resync=never, clock=clock,
        backoff=Backoff(initial=0.001, cap=0.002, clock=clock))
    wait_for(reflector._watching.is_set, timeout=5)
    assert clock.wait_for_waiters(1)
    clock.step(5.0)
    assert asked.wait(5)
    assert store.count("resync") == 0


def test_watch_error_hook_sees_errors(lw: FakeListerWatcher, run_reflector: Runner) -> None:
    seen: list[BaseException] = []
    lw.list_errors.append(ServerError(500, "InternalError", "boom"))
    run_reflector(use_watch_list=False, on_watch_error=seen.append)
    assert lw.wait_for_watches(1)
    assert isinstance(seen[0], ServerError)


def test_backoff_ranges_and_reset() -> None:
    clock = FakeClock()
    draws = iter([0.0, 0.999] * 20)
    backoff = Backoff(clock=clock, rand=lambda: next(draws))
    got = [backoff.next() for _ in range(8)]
    assert got[0] == pytest.approx(0.8)
    assert got[1] == pytest.approx(1.6 * 1.999)
    assert got[6] == pytest.approx(30.0) and got[7] == pytest.approx(59.97)
    clock.step(121)
    assert backoff.next() == pytest.approx(0.8)


def test_watch_list_fills_store_and_keeps_the_stream(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    lw.watch_list = True
    lw.upsert(pod("a"))
    lw.upsert(pod("b"))
    reflector, store = run_reflector(inactivity_timeout=50.0)
    wait_for(lambda: store.count("replace") == 1, timeout=5)
    assert store.ops[0] == ("replace", (["a", "b"], "102"))
    assert reflector.last_resource_version == "102"
    lw.upsert(pod("c"))  # arrives on the same stream: no second WATCH, no LIST
    wait_for(lambda: store.count("add") == 1, timeout=5)
    assert len(lw.calls) == 1 and not lists(lw)
    assert lw.streams[0].inactivity_timeout == 50.0  # the WatchList deadline no longer applies


class ReadOnlyObjects:
    """A watch stream whose ADDED/MODIFIED objects are Mappings but no dicts."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __iter__(self) -> Iterator[WatchEvent]:
        for event in self._inner:
            if event.type in ("ADDED", "MODIFIED"):
                yield WatchEvent(event.type, ReadOnly(event.object))  # type: ignore[arg-type]
            else:
                yield event


def test_watch_list_initial_events_may_be_mappings_but_no_dicts(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    lw.watch_list = True
    lw.upsert(pod("a"))
    opened = lw.watch

    def watch(**options: Any) -> Any:
        return ReadOnlyObjects(opened(**options))

    lw.watch = watch  # type: ignore[method-assign]
    _, store = run_reflector(inactivity_timeout=50.0)
    wait_for(lambda: store.count("replace") == 1, timeout=5)
    assert store.ops[0] == ("replace", (["a"], "101"))
    assert not lists(lw)  # WatchList did not fail over to a LIST


def test_watch_list_without_end_bookmark_falls_back_within_deadline(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    lw.watch_list = False  # accepted, but the bookmark never comes (pitfall §9)
    lw.upsert(pod("a"))
    _, store = run_reflector(watch_list_deadline=0.3)
    # Each stage waits on its condition for up to PATIENCE (a loaded CI machine can be
    # seconds late), which is still less than the default 30 s WatchList deadline: a
    # reflector that ignored watch_list_deadline would not fall back in time.
    wait_for(lambda: store.count("replace") >= 1, timeout=PATIENCE, message="the LIST")
    assert lw.streams[0].inactivity_timeout == 0.3, "the deadline bounds each silent read"
    assert lists(lw), "fell back to LIST"
    assert store.count("replace") == 1
    # Issue 8 item 11: one timeout does not switch WatchList off for good (this test used
    # to pin that it did): the next relist (a malformed line forces one) tries it again.
    assert lw.wait_for_watches(2, timeout=PATIENCE)  # the WatchList, then the plain watch
    lw.emit(WatchDecodeError("garbage"))

    def watch_lists() -> int:
        return sum(1 for c in lw.calls if c.options.get("send_initial_events"))

    wait_for(lambda: watch_lists() >= 2, timeout=PATIENCE, message="a second WatchList")
    assert watch_lists() == 2


# -- issue 8: stopping promptly in every state, WatchList progress and failures ----------

def _start(lw: FakeListerWatcher, **kwargs: Any) -> tuple[Reflector, threading.Event,
                                                          threading.Thread, RecordingStore]:
    store = RecordingStore()
    kwargs.setdefault("backoff", Backoff(initial=0.001, cap=0.002))
    kwargs.setdefault("expected_kind", "Pod")
    reflector = Reflector(lw, store, **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), name="pycontroller-test")
    thread.start()
    return reflector, stop, thread, store


def _stop_latency(stop: threading.Event, thread: threading.Thread) -> float:
    started = time.monotonic()
    stop.set()
    thread.join(10)
    assert not thread.is_alive(), "the reflector did not stop"
    return time.monotonic() - started


class _Blocking:
    """Makes LIST or WATCH calls of a fake block (as a request to a silent server)."""

    def __init__(self, lw: FakeListerWatcher, verb: str) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        real = getattr(lw, verb)

        def blocked(**kw: Any) -> Any:
            if verb == "list" or not kw["send_initial_events"]:
                self.entered.set()
                self.release.wait(30)  # a request's read timeout
            return real(**kw)

        setattr(lw, verb, blocked)


STOP_BUDGET = 1.0  # "well under a second" (typically a few ms; generous for a loaded CI)


def test_stop_inside_initial_watch_list_is_prompt(lw: FakeListerWatcher) -> None:
    lw.watch_list = False  # the initial events arrive, the end bookmark never does
    lw.upsert(pod("a"))
    _, stop, thread, store = _start(lw, watch_list_deadline=60.0)
    assert lw.wait_for_watches(1)
    wait_for(lambda: lw.streams and lw.streams[0]._queue.empty(), timeout=5)
    assert _stop_latency(stop, thread) < STOP_BUDGET
    assert lw.streams[0].closed and store.ops == [] and not lists(lw)


def test_stop_inside_a_list_page_is_prompt(lw: FakeListerWatcher) -> None:
    blocking = _Blocking(lw, "list")
    _, stop, thread, store = _start(lw, use_watch_list=False)
    try:
        assert blocking.entered.wait(5)
        assert _stop_latency(stop, thread) < STOP_BUDGET
        assert store.ops == []
    finally:
        blocking.release.set()


def test_stop_while_opening_a_watch_is_prompt(lw: FakeListerWatcher) -> None:
    blocking = _Blocking(lw, "watch")
    _, stop, thread, _ = _start(lw, use_watch_list=False)
    try:
        assert blocking.entered.wait(5)
        assert _stop_latency(stop, thread) < STOP_BUDGET
    finally:
        blocking.release.set()
    wait_for(lambda: all(s.closed for s in lw.streams), timeout=5)  # the late stream too


def test_stop_in_backoff_is_prompt(lw: FakeListerWatcher) -> None:
    lw.list_errors.append(ServerError(500, "InternalError", "boom"))
    backoff = Backoff(initial=60.0, cap=120.0)
    _, stop, thread, _ = _start(lw, use_watch_list=False, backoff=backoff)
    wait_for(lambda: len(lists(lw)) == 1, timeout=5)
    time.sleep(0.05)  # now asleep in the 60 s backoff
    assert _stop_latency(stop, thread) < STOP_BUDGET
    assert len(lists(lw)) == 1


def test_stop_in_watch_is_prompt(lw: FakeListerWatcher) -> None:
    reflector, stop, thread, _ = _start(lw, use_watch_list=False)
    wait_for(reflector._watching.is_set, timeout=5)
    assert _stop_latency(stop, thread) < STOP_BUDGET


def test_malformed_line_during_watch_list_closes_it_and_falls_back_to_list(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    lw.watch_list = True
    lw.upsert(pod("a"))
    break_first_watch_list(lw, WatchDecodeError("malformed watch line: b'{'"))
    _, store = run_reflector(watch_list_deadline=60.0)
    wait_for(lambda: store.count("replace") == 1, timeout=5)
    assert lists(lw), "fell back to LIST"
    assert lw.streams[0].closed, "the broken WatchList stream was closed"
    assert lw.wait_for_watches(2)
    lw.emit(WatchDecodeError("garbage"))  # → relist: WatchList is tried again and works
    wait_for(lambda: store.count("replace") == 2, timeout=5)
    assert sum(1 for c in lw.calls if c.options.get("send_initial_events")) == 2


def break_first_watch_list(lw: FakeListerWatcher, error: Exception) -> None:
    """The first WatchList stream ``lw`` opens ends with ``error`` after its events."""
    real_watch = lw.watch
    broken = [True]

    def watch(**kw: Any) -> Any:
        stream = real_watch(**kw)
        if kw["send_initial_events"] and broken[0]:
            broken[0] = False
            return FakeStreamWithError(stream, error)
        return stream

    lw.watch = watch  # type: ignore[method-assign]


class FakeStreamWithError:
    """Delivers the first event of ``inner``, then raises ``error``."""

    def __init__(self, inner: Any, error: BaseException) -> None:
        self._inner, self._error = inner, error

    def __iter__(self) -> Iterator[WatchEvent]:
        for event in self._inner:
            yield event
            raise self._error

    def close(self) -> None:
        self._inner.close()


def test_slow_but_steady_watch_list_is_not_cut_off(lw: FakeListerWatcher,
                                                  run_reflector: Runner) -> None:
    lw.watch_list = True
    for i in range(8):
        lw.upsert(pod(f"p{i}"))
    real_watch = lw.watch

    def watch(**kw: Any) -> Any:
        stream = real_watch(**kw)
        return SlowStream(stream, 0.1) if kw["send_initial_events"] else stream

    lw.watch = watch  # type: ignore[method-assign]
    _, store = run_reflector(watch_list_deadline=0.5)
    # 9 items x 0.1 s: the whole stream takes ~0.9 s, longer than the 0.5 s deadline,
    # but something arrives every 0.1 s.
    wait_for(lambda: store.count("replace") == 1, timeout=10)
    assert store.ops[0] == ("replace", ([f"p{i}" for i in range(8)], "108"))
    assert not lists(lw), "no fallback to LIST"


class SlowStream:
    """Delays every event of ``inner`` by ``delay`` seconds."""

    def __init__(self, inner: Any, delay: float) -> None:
        self._inner, self._delay = inner, delay

    def __iter__(self) -> Iterator[WatchEvent]:
        for event in self._inner:
            time.sleep(self._delay)
            yield event

    def close(self) -> None:
        self._inner.close()


def test_a_dying_reflector_does_not_set_the_stop_event(lw: FakeListerWatcher) -> None:
    class Fatal(BaseException):
        pass

    def dead(**kw: Any) -> Any:
        raise Fatal("bug")

    lw.list = dead  # type: ignore[method-assign]
    store = RecordingStore()
    reflector = Reflector(lw, store, use_watch_list=False)
    stop = threading.Event()
    with pytest.raises(Fatal):
        reflector.run(stop)
    assert not stop.is_set()
    stop.set()


def test_failed_replace_after_watch_list_closes_its_stream(lw: FakeListerWatcher) -> None:
    lw.watch_list = True
    lw.upsert(pod("a"))

    class FailingOnce(RecordingStore):
        def __init__(self) -> None:
            super().__init__()
            self.failures = [1]

        def replace(self, objects: Iterable[Any], resource_version: str) -> None:
            if self.failures:
                self.failures.pop()
                raise RuntimeError("store bug")
            super().replace(objects, resource_version)

    store = FailingOnce()
    reflector = Reflector(lw, store, expected_kind="Pod",
                          backoff=Backoff(initial=0.001, cap=0.002))
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), name="pycontroller-test")
    thread.start()
    try:
        wait_for(lambda: store.count("replace") == 1, timeout=5)
        assert lw.streams[0].closed, "the stream of the failed sync was left open"
    finally:
        _stop_latency(stop, thread)


def test_too_large_event_relists(lw: FakeListerWatcher, run_reflector: Runner) -> None:
    # The client's per-event cap surfaces as WatchEventTooLargeError, a WatchDecodeError.
    from pycontroller.client import WatchEventTooLargeError

    run_reflector(use_watch_list=False)
    assert lw.wait_for_watches(1)
    lw.emit(WatchEventTooLargeError("watch event larger than 16 bytes"))
    wait_for(lambda: len(lists(lw)) == 2, timeout=5)


# ---- lists streamed into a store that takes them object by object ---------------------------

class StreamingStore(RecordingStore):
    """A RecordingStore with ``start_relist``: records each list's add/remove/restart/finish
    (as ``relist`` ops) in arrival order."""

    def start_relist(self) -> Any:
        store = self

        class Relist:
            def add(self, obj: Any) -> None:
                store._rec("relist", ("add", obj["metadata"]["name"]))

            def remove(self, obj: Any) -> None:
                store._rec("relist", ("remove", obj["metadata"]["name"]))

            def restart(self) -> None:
                store._rec("relist", ("restart", None))

            def finish(self, resource_version: str) -> None:
                store._rec("relist", ("finish", resource_version))

        self._rec("relist", ("start", None))
        return Relist()

    def relist_ops(self) -> list[tuple[str, Any]]:
        with self.lock:
            return [arg for op, arg in self.ops if op == "relist"]


def run_streaming(lw: FakeListerWatcher, **kwargs: Any) -> tuple[StreamingStore,
                                                                  threading.Event,
                                                                  threading.Thread]:
    store = StreamingStore()
    kwargs.setdefault("backoff", Backoff(initial=0.001, cap=0.002))
    reflector = Reflector(lw, store, expected_kind="Pod", **kwargs)
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), name="pycontroller-test")
    thread.start()
    return store, stop, thread


def test_watch_list_streams_into_the_store_before_the_list_ends(lw: FakeListerWatcher) -> None:
    lw.watch_list = True
    for i in range(3):
        lw.upsert(pod(f"p{i}"))
    real_watch = lw.watch
    gate = threading.Event()

    def watch(**kw: Any) -> Any:
        stream = real_watch(**kw)
        return GatedStream(stream, after=2, gate=gate) if kw["send_initial_events"] else stream

    lw.watch = watch  # type: ignore[method-assign]
    store, stop, thread = run_streaming(lw)
    try:
        wait_for(lambda: len(store.relist_ops()) >= 3, timeout=5)
        # two objects reached the store; the stream waits before the third
        assert store.relist_ops() == [("start", None), ("add", "p0"), ("add", "p1")]
        assert store.count("replace") == 0
        gate.set()
        wait_for(lambda: ("finish", "103") in store.relist_ops(), timeout=5)
        assert store.relist_ops() == [("start", None), ("add", "p0"), ("add", "p1"),
                                      ("add", "p2"), ("finish", "103")]
    finally:
        gate.set()
        _stop_latency(stop, thread)


def test_broken_watch_list_leaves_its_objects_unfinished_and_the_list_completes_them(
    lw: FakeListerWatcher,
) -> None:
    lw.watch_list = True
    lw.upsert(pod("a"))
    lw.upsert(pod("b"))
    break_first_watch_list(lw, TransportError("connection reset"))
    store, stop, thread = run_streaming(lw, watch_list_deadline=60.0)
    try:
        wait_for(lambda: ("finish", "102") in store.relist_ops(), timeout=5)
        # the broken WatchList's relist is never finished (no tombstones come of it);
        # the LIST that follows is a fresh, complete one
        assert store.relist_ops() == [("start", None), ("add", "a"),
                                      ("start", None), ("add", "a"), ("add", "b"),
                                      ("finish", "102")]
        assert lists(lw), "fell back to LIST"
    finally:
        _stop_latency(stop, thread)


def test_list_pages_stream_page_by_page_and_restart_on_expired_continuation(
    lw: FakeListerWatcher,
) -> None:
    for i in range(3):
        lw.upsert(pod(f"p{i}"))
    lw.page_size_cap = 2
    expire_continuations(lw)
    store, stop, thread = run_streaming(lw, use_watch_list=False)
    try:
        assert lw.wait_for_watches(1)
        assert store.relist_ops() == [("start", None), ("add", "p0"), ("add", "p1"),
                                      ("restart", None), ("add", "p0"), ("add", "p1"),
                                      ("add", "p2"), ("finish", "103")]
    finally:
        _stop_latency(stop, thread)


def test_watch_list_that_cannot_even_be_opened_falls_back_to_list(
    lw: FakeListerWatcher, run_reflector: Runner
) -> None:
    """As client-go, any WatchList error falls back to LIST. A WatchList open that raised
    anything but an API or transport error (here a ListerWatcher without WatchList) was
    retried forever instead: the store never got a list."""
    lw.upsert(pod("a"))
    lw.watch_list = True
    plain_watch = lw.watch

    def watch(**options: Any) -> Any:
        if options["send_initial_events"]:
            raise NotImplementedError("no WatchList here")
        return plain_watch(**options)

    lw.watch = watch  # type: ignore[method-assign]
    _, store = run_reflector()
    assert lw.wait_for_watches(1, timeout=PATIENCE)  # the plain watch, after the LIST
    assert wait_for(lambda: bool(store.ops), timeout=PATIENCE)
    assert store.ops[0] == ("replace", (["a"], "101"))
