"""SharedIndexInformer against the FakeListerWatcher (spec checklist 45-57)."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, cast

import pytest
from mapping_helpers import ReadOnly
from prometheus_client import CollectorRegistry
from stream_helpers import GatedStream

from pycontroller._util._backoff import Backoff
from pycontroller._util._wait import wait_for
from pycontroller.cache import DeletedFinalStateUnknown
from pycontroller.cache._informer_factory import wait_for_cache_sync
from pycontroller.cache._shared_informer import SharedIndexInformer
from pycontroller.errors import ShutDownError
from pycontroller.metrics import NoopMetricsProvider
from pycontroller.metrics.prometheus import PrometheusMetricsProvider
from pycontroller.testing import FakeClock
from pycontroller.testing._fake_lister_watcher import FakeListerWatcher

PATIENCE = 20.0  # real seconds to wait for a condition: generous for a loaded CI machine


def pod(name: str, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", **extra}}


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.lock = threading.Lock()

    def on_add(self, obj: Mapping[str, Any], initial: bool) -> None:
        with self.lock:
            self.events.append(("add", obj["metadata"]["name"], str(initial)))

    def on_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        with self.lock:
            self.events.append(("update", new["metadata"]["name"],
                                "same" if old is new else "changed"))

    def on_delete(self, obj: Any) -> None:
        name = obj.key if isinstance(obj, DeletedFinalStateUnknown) else obj["metadata"]["name"]
        kind = "tombstone" if isinstance(obj, DeletedFinalStateUnknown) else "object"
        with self.lock:
            self.events.append(("delete", name, kind))

    def snapshot(self) -> list[tuple[str, ...]]:
        with self.lock:
            return list(self.events)

    def handlers(self) -> dict[str, Any]:
        return {"on_add": self.on_add, "on_update": self.on_update, "on_delete": self.on_delete}


@pytest.fixture
def lw() -> FakeListerWatcher:
    return FakeListerWatcher()


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def make(lw: FakeListerWatcher, **kwargs: Any) -> SharedIndexInformer:
    kwargs.setdefault("use_watch_list", False)
    return SharedIndexInformer(lw, expected_kind="Pod", **kwargs)


def run(informer: SharedIndexInformer, stop: threading.Event, lw: FakeListerWatcher) -> None:
    informer.start(stop)
    assert wait_for_cache_sync(stop, informer.has_synced, timeout=5)
    assert lw.wait_for_watches(1)


def test_initial_list_then_events_in_order(lw: FakeListerWatcher,
                                           stop: threading.Event) -> None:
    lw.upsert(pod("a"))
    informer, rec = make(lw), Recorder()
    reg = informer.add_event_handler(**rec.handlers())
    run(informer, stop, lw)
    wait_for(reg.has_synced, timeout=5)
    lw.upsert(pod("b"))
    lw.upsert(pod("b", labels={"x": "1"}))
    lw.remove("ns", "a")
    wait_for(lambda: len(rec.snapshot()) == 4, timeout=5)
    assert rec.snapshot() == [("add", "a", "True"), ("add", "b", "False"),
                              ("update", "b", "changed"), ("delete", "a", "object")]
    assert [o["metadata"]["name"] for o in informer.lister.list()] == ["b"]
    stop.set()
    informer.join(5)


def test_cache_is_updated_before_handler_runs(lw: FakeListerWatcher,
                                              stop: threading.Event) -> None:
    informer = make(lw)
    seen: list[str] = []

    def on_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        cached = informer.lister.get("a", namespace="ns")
        assert cached is not None
        seen.append(cached["metadata"]["resourceVersion"])

    lw.upsert(pod("a"))
    informer.add_event_handler(on_update=on_update)
    run(informer, stop, lw)
    new = lw.upsert(pod("a", labels={"v": "2"}))
    wait_for(lambda: seen, timeout=5)
    assert seen == [new["metadata"]["resourceVersion"]]
    stop.set()
    informer.join(5)


def test_missed_delete_arrives_as_tombstone_after_relist(lw: FakeListerWatcher,
                                                         stop: threading.Event) -> None:
    from pycontroller.client._watch import WatchDecodeError

    lw.upsert(pod("gone"))
    lw.upsert(pod("kept"))
    informer, rec = make(lw), Recorder()
    informer.add_event_handler(**rec.handlers())
    run(informer, stop, lw)
    lw.remove("ns", "gone", emit=False)  # the delete happens while we are not watching
    lw.emit(WatchDecodeError("cut"))  # → relist
    wait_for(lambda: ("delete", "ns/gone", "tombstone") in rec.snapshot(), timeout=5)
    # Issue 8 item 2 (this test pinned the opposite): as in client-go, an informer without
    # resync delivers an unchanged relisted object as on_update(old, new), equal RVs.
    wait_for(lambda: ("update", "kept", "changed") in rec.snapshot(), timeout=5)
    stop.set()
    informer.join(5)


class RVRecorder(Recorder):
    def on_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        same_rv = old["metadata"]["resourceVersion"] == new["metadata"]["resourceVersion"]
        with self.lock:
            self.events.append(("update", new["metadata"]["name"],
                                "same-rv" if same_rv else "new-rv"))


def _relist(lw: FakeListerWatcher, lists_before: int, clock: FakeClock) -> None:
    from pycontroller.client._watch import WatchDecodeError

    lw.emit(WatchDecodeError("cut"))  # → backoff (on the fake clock), then relist
    assert clock.wait_for_waiters(2)  # the resync timer and the backoff sleep
    clock.step(0.01)
    wait_for(lambda: sum(c.verb == "list" for c in lw.calls) > lists_before, timeout=10)


def test_relist_unchanged_objects_follow_client_go_syncing_listeners(
    lw: FakeListerWatcher, stop: threading.Event
) -> None:
    clock = FakeClock()
    lw.upsert(pod("a"))
    informer = make(lw, clock=clock, resync_period=10.0,
                    reflector_options={"backoff": Backoff(initial=0.001, cap=0.002)})
    due, never = RVRecorder(), RVRecorder()
    informer.add_event_handler(**due.handlers())  # the informer's 10 s
    never_reg = informer.add_event_handler(**never.handlers(), resync_period=0)
    assert never_reg.resync_period == 0
    run(informer, stop, lw)
    # Before the first resync check every handler is "syncing" (client-go's addListener).
    _relist(lw, 1, clock)
    for rec in (due, never):
        wait_for(lambda r=rec: ("update", "a", "same-rv") in r.snapshot(),  # type: ignore[misc]
                 timeout=5)
    # The first check (due one) leaves only the handler whose resync was due syncing.
    assert clock.wait_for_waiters(1)
    clock.step(10.0)
    wait_for(lambda: due.snapshot().count(("update", "a", "same-rv")) == 2, timeout=5)
    before = list(never.snapshot())
    _relist(lw, 2, clock)
    wait_for(lambda: due.snapshot().count(("update", "a", "same-rv")) == 3, timeout=5)
    lw.upsert(pod("b"))  # a marker behind the relist in the same order
    wait_for(lambda: ("add", "b", "False") in never.snapshot(), timeout=5)
    assert never.snapshot() == [*before, ("add", "b", "False")]
    stop.set()
    informer.join(5)


def test_handler_resync_on_an_informer_without_resync_never_resyncs(
    lw: FakeListerWatcher, stop: threading.Event
) -> None:
    from structlog.testing import capture_logs

    lw.upsert(pod("a"))
    informer = make(lw)  # resync 0
    rec = RVRecorder()
    with capture_logs() as logs:
        reg = informer.add_event_handler(**rec.handlers(), resync_period=5.0)
    assert reg.resync_period == 0  # as client-go: the informer does not support resyncing
    assert any(e["event"] == "handler_resync_disabled" for e in logs)
    run(informer, stop, lw)
    assert informer._reflector is not None and informer._reflector._resync_period == 0
    stop.set()
    informer.join(5)


def test_slow_handler_does_not_delay_fast_one(lw: FakeListerWatcher,
                                              stop: threading.Event) -> None:
    gate = threading.Event()
    informer, fast = make(lw), Recorder()
    slow_reg = informer.add_event_handler(on_add=lambda obj, initial: gate.wait(10))
    fast_reg = informer.add_event_handler(**fast.handlers())
    run(informer, stop, lw)
    for i in range(20):
        lw.upsert(pod(f"p{i}"))
    wait_for(lambda: len(fast.snapshot()) == 20, timeout=5)
    assert slow_reg.pending() >= 18  # one is being handled, the rest wait in its buffer
    assert fast_reg.pending() == 0
    gate.set()
    wait_for(lambda: slow_reg.pending() == 0, timeout=5)
    stop.set()
    informer.join(5)


def test_failing_handler_is_logged_and_informer_keeps_going(
    lw: FakeListerWatcher, stop: threading.Event
) -> None:
    from structlog.testing import capture_logs

    informer, rec = make(lw), Recorder()

    def broken(obj: Mapping[str, Any], initial: bool) -> None:
        raise ValueError("handler bug")

    informer.add_event_handler(on_add=broken)
    informer.add_event_handler(**rec.handlers())
    with capture_logs() as logs:
        run(informer, stop, lw)
        lw.upsert(pod("a"))
        lw.upsert(pod("b"))
        wait_for(lambda: len(rec.snapshot()) == 2, timeout=5)
        wait_for(lambda: sum(e["event"] == "handler_failed" for e in logs) == 2, timeout=5)
    stop.set()
    informer.join(5)


def test_handler_added_after_sync_gets_each_object_once(lw: FakeListerWatcher,
                                                       stop: threading.Event) -> None:
    for i in range(50):
        lw.upsert(pod(f"p{i}"))
    informer = make(lw)
    run(informer, stop, lw)
    late = Recorder()
    gate = threading.Event()

    def slow_add(obj: Mapping[str, Any], initial: bool) -> None:
        gate.wait(5)
        late.on_add(obj, initial)

    reg = informer.add_event_handler(on_add=slow_add, on_update=late.on_update)
    assert not reg.has_synced()  # informer synced, but this handler has not seen the cache
    assert informer.has_synced()
    lw.upsert(pod("p0", labels={"new": "1"}))
    gate.set()
    wait_for(reg.has_synced, timeout=5)
    wait_for(lambda: len(late.snapshot()) == 51, timeout=5)
    adds = [e for e in late.snapshot() if e[0] == "add"]
    assert sorted(e[1] for e in adds) == sorted(f"p{i}" for i in range(50))
    assert all(e[2] == "True" for e in adds)
    assert late.snapshot()[-1] == ("update", "p0", "changed")  # after its synthetic add
    stop.set()
    informer.join(5)


def test_remove_event_handler_stops_deliveries(lw: FakeListerWatcher,
                                               stop: threading.Event) -> None:
    informer, rec, other = make(lw), Recorder(), Recorder()
    reg = informer.add_event_handler(**rec.handlers())
    informer.add_event_handler(**other.handlers())
    run(informer, stop, lw)
    lw.upsert(pod("a"))
    wait_for(lambda: len(rec.snapshot()) == 1, timeout=5)
    informer.remove_event_handler(reg)
    informer.remove_event_handler(reg)  # twice is fine
    lw.upsert(pod("b"))
    wait_for(lambda: len(other.snapshot()) == 2, timeout=5)
    assert len(rec.snapshot()) == 1 and reg.removed
    stop.set()
    informer.join(5)


def pending_series(registry: CollectorRegistry) -> list[str]:
    return [s.labels["name"] for m in registry.collect()
            if m.name == "informer_pending_notifications" for s in m.samples]


def test_removing_handlers_removes_their_pending_gauge_series(
        lw: FakeListerWatcher, stop: threading.Event) -> None:
    registry = CollectorRegistry()
    informer = make(lw, metrics=PrometheusMetricsProvider(registry=registry))
    kept = informer.add_event_handler(**Recorder().handlers())
    run(informer, stop, lw)
    for _ in range(50):  # an add/remove loop must not grow the series
        reg = informer.add_event_handler(**Recorder().handlers())
        assert len(pending_series(registry)) == 2
        informer.remove_event_handler(reg)
        informer.remove_event_handler(reg)  # twice is fine
    assert pending_series(registry) == [kept._listener.name]
    informer.remove_event_handler(kept)
    assert pending_series(registry) == []
    stop.set()
    informer.join(5)


class _OldProvider:
    """A provider written before ``remove_pending_notifications_metric`` existed."""

    def __init__(self) -> None:
        self._noop = NoopMetricsProvider()

    def __getattr__(self, name: str) -> Any:
        if name == "remove_pending_notifications_metric":
            raise AttributeError(name)
        return getattr(self._noop, name)


class _BrokenProvider(_OldProvider):
    def remove_pending_notifications_metric(self, name: str) -> None:
        raise RuntimeError("backend down")


@pytest.mark.parametrize("provider", [_OldProvider, _BrokenProvider])
def test_a_provider_that_cannot_remove_series_does_not_break_handler_removal(
        lw: FakeListerWatcher, stop: threading.Event, provider: type) -> None:
    informer, rec, other = make(lw, metrics=cast(Any, provider())), Recorder(), Recorder()
    reg = informer.add_event_handler(**rec.handlers())
    informer.add_event_handler(**other.handlers())
    run(informer, stop, lw)
    informer.remove_event_handler(reg)
    lw.upsert(pod("a"))
    assert wait_for(lambda: len(other.snapshot()) == 1, timeout=5)
    assert rec.snapshot() == [] and reg.removed
    stop.set()
    informer.join(5)


def test_resync_replays_cache_to_resyncing_handlers_only(lw: FakeListerWatcher,
                                                         stop: threading.Event) -> None:
    clock = FakeClock()
    lw.upsert(pod("a"))
    informer = make(lw, clock=clock, resync_period=10.0)  # (was 0: issue 8 item 2)
    syncing, quiet = Recorder(), Recorder()
    informer.add_event_handler(**syncing.handlers(), resync_period=10.0)
    informer.add_event_handler(**quiet.handlers(), resync_period=0)
    run(informer, stop, lw)
    wait_for(lambda: len(syncing.snapshot()) == 1, timeout=5)
    assert clock.wait_for_waiters(1)
    clock.step(10.0)
    wait_for(lambda: ("update", "a", "same") in syncing.snapshot(), timeout=5)
    assert quiet.snapshot() == [("add", "a", "True")]
    stop.set()
    informer.join(5)


def test_resync_period_floor_and_lifecycle_errors(lw: FakeListerWatcher,
                                                  stop: threading.Event) -> None:
    # (an informer without resync gives every handler 0: see the test above)
    assert make(FakeListerWatcher(), resync_period=0.5).add_event_handler(
        resync_period=0.2).resync_period == 1.0
    informer = make(lw, resync_period=30.0)
    assert informer.add_event_handler().resync_period == 30.0
    run(informer, stop, lw)
    late = informer.add_event_handler(resync_period=5.0)
    assert late.resync_period == 30.0  # after start: raised to the informer's check period
    with pytest.raises(RuntimeError):
        informer.set_transform(None)
    with pytest.raises(RuntimeError):
        informer.set_watch_error_handler(lambda exc: None)
    stop.set()
    informer.join(5)
    with pytest.raises(ShutDownError):
        informer.add_event_handler()


def test_managed_fields_are_dropped_by_default(lw: FakeListerWatcher,
                                               stop: threading.Event) -> None:
    lw.upsert(pod("a", managedFields=[{"manager": "kubectl"}]))
    informer = make(lw)
    run(informer, stop, lw)
    cached = informer.lister.get("a", namespace="ns")
    assert cached is not None and "managedFields" not in cached["metadata"]
    stop.set()
    # Its threads must be gone before the test ends (the suite's leak check): join() covers
    # them all once stop is set; it used to leave the stop watcher running, and a join that
    # timed out went unnoticed.
    assert informer.join(PATIENCE), "the informer did not stop"
    assert not [t.name for t in threading.enumerate() if t.name.endswith(f"-{informer.name}")
                and not t.name.startswith("pycontroller-reflector-call-")]  # (see join)


@pytest.mark.allow_cache_mutation
def test_mutating_handler_is_reported(lw: FakeListerWatcher, stop: threading.Event) -> None:
    from pycontroller.cache._mutation_detector import detected_mutations

    before = len(detected_mutations())
    informer = make(lw)

    def bad(obj: Mapping[str, Any], initial: bool) -> None:
        obj["metadata"]["labels"] = {"mutated": "yes"}

    informer.add_event_handler(on_add=bad)
    run(informer, stop, lw)
    lw.upsert(pod("victim"))
    wait_for(lambda: informer.lister.get("victim", namespace="ns") is not None, timeout=5)
    stop.set()
    informer.join(5)
    assert "ns/victim" in detected_mutations()[before:]


def test_failing_index_function_in_the_middle_of_a_list_loses_nothing(
    lw: FakeListerWatcher, stop: threading.Event
) -> None:
    """Issue 8 item 1: every object after the bad one used to be missing."""
    from structlog.testing import capture_logs

    for name in ("a", "b", "bad", "c", "d"):
        lw.upsert(pod(name, labels={"app": "web"}))

    def by_app(obj: Mapping[str, Any]) -> list[str]:
        if obj["metadata"]["name"] == "bad":
            raise KeyError("no app")
        return [obj["metadata"]["labels"]["app"]]

    informer, rec = make(lw, indexers={"app": by_app}), Recorder()
    reg = informer.add_event_handler(**rec.handlers())
    with capture_logs() as logs:
        run(informer, stop, lw)
        wait_for(reg.has_synced, timeout=5)
    names = ["a", "b", "bad", "c", "d"]
    assert sorted(o["metadata"]["name"] for o in informer.lister.list()) == names
    assert sorted(e[1] for e in rec.snapshot()) == names
    assert informer.indexer.index_keys("app", "web") == ["ns/a", "ns/b", "ns/c", "ns/d"]
    assert informer.indexer.index_keys("namespace", "ns") == [f"ns/{n}" for n in names]
    assert informer.indexer.index_errors == 1
    failed = [e for e in logs if e["event"] == "index_func_failed"]
    assert [(e["key"], e["index"]) for e in failed] == [("ns/bad", "app")]
    stop.set()
    informer.join(5)


def test_an_informer_that_dies_stops_alone_and_reports_why(
    lw: FakeListerWatcher, stop: threading.Event
) -> None:
    """Issue 8 item 7: the caller's stop event used to be set by a dying informer."""
    from structlog.testing import capture_logs

    class Fatal(BaseException):
        pass

    def dead(**kw: Any) -> Any:
        raise Fatal("reflector bug")

    lw.list = dead  # type: ignore[method-assign]
    failures: list[tuple[str, BaseException]] = []
    informer = make(lw, on_failure=lambda inf, exc: failures.append((inf.name, exc)))
    rec = Recorder()
    reg = informer.add_event_handler(**rec.handlers())
    with capture_logs() as logs:
        informer.start(stop)
        informer.join(5)
    assert informer._thread is not None and not informer._thread.is_alive()
    assert not stop.is_set()
    assert isinstance(informer.failure, Fatal)
    assert failures == [(informer.name, informer.failure)]
    failed = [e for e in logs if e["event"] == "informer_failed"]
    assert failed and failed[0]["error"] == "reflector bug"
    assert reg.removed and not informer.has_synced()


def test_relist_streams_into_the_cache_and_deletes_vanished_objects_last(
    lw: FakeListerWatcher, stop: threading.Event, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pycontroller.cache import _real_fifo
    from pycontroller.client._watch import WatchDecodeError

    monkeypatch.setattr(_real_fifo, "RELIST_BATCH", 1)  # queue each object as it arrives
    lw.watch_list = True
    for name in ("a", "b", "gone"):
        lw.upsert(pod(name))
    real_watch = lw.watch
    gate = threading.Event()
    relisting = [False]

    def watch(**kw: Any) -> Any:
        stream = real_watch(**kw)
        if kw["send_initial_events"] and relisting[0]:
            return GatedStream(stream, after=1, gate=gate)
        return stream

    lw.watch = watch  # type: ignore[method-assign]
    informer = make(lw, use_watch_list=True,
                    reflector_options={"backoff": Backoff(initial=0.001, cap=0.002)})
    rec = RVRecorder()
    informer.add_event_handler(**rec.handlers())
    informer.start(stop)
    assert wait_for_cache_sync(stop, informer.has_synced, timeout=5)
    old_b = informer.lister.get("b", namespace="ns")
    lw.upsert(pod("a", labels={"v": "2"}), emit=False)  # changed while not watching
    lw.remove("ns", "gone", emit=False)
    relisting[0] = True
    lw.emit(WatchDecodeError("cut"))  # → relist (WatchList, held after its first object)
    try:
        wait_for(lambda: ("update", "a", "new-rv") in rec.snapshot(), timeout=5)
        # the first relisted object is in the cache while the list still arrives; the
        # rest is untouched and nothing is deleted before the list is complete
        relisted = informer.lister.get("a", namespace="ns")
        assert relisted is not None and relisted["metadata"]["labels"] == {"v": "2"}
        assert informer.lister.get("b", namespace="ns") is old_b
        assert informer.lister.get("gone", namespace="ns") is not None
    finally:
        gate.set()
    wait_for(lambda: ("delete", "ns/gone", "tombstone") in rec.snapshot(), timeout=5)
    assert rec.snapshot()[-3:] == [("update", "a", "new-rv"), ("update", "b", "same-rv"),
                                   ("delete", "ns/gone", "tombstone")]
    assert sorted(o["metadata"]["name"] for o in informer.lister.list()) == ["a", "b"]
    stop.set()
    informer.join(5)


def freeze_metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """A transform that works in place and leaves ``metadata`` a read-only Mapping."""
    obj["metadata"] = ReadOnly(obj["metadata"])
    return obj


def test_a_watch_advances_its_rv_when_the_transform_freezes_metadata(
    lw: FakeListerWatcher, stop: threading.Event
) -> None:
    informer = make(lw, transform=freeze_metadata)
    run(informer, stop, lw)
    stored = lw.upsert(pod("a"))
    wait_for(lambda: informer.lister.get("a", namespace="ns") is not None, timeout=PATIENCE)
    want = stored["metadata"]["resourceVersion"]
    wait_for(lambda: informer.last_resource_version == want, timeout=5)
    stop.set()
    informer.join(5)


def test_a_relisted_object_with_a_new_rv_is_an_update_whatever_its_metadata_mapping(
    lw: FakeListerWatcher,
) -> None:
    """A handler whose resync is not due skips relisted objects with the same RV only."""
    from pycontroller.cache._fifo import Delta, DeltaType

    informer = make(lw, resync_period=10.0)
    registration = informer.add_event_handler(**RVRecorder().handlers())
    registration._listener.resyncing = False  # not due (as after a resync check)

    def relisted(rv: str) -> dict[str, Any]:
        return {"metadata": ReadOnly({"name": "a", "namespace": "ns", "resourceVersion": rv})}

    informer._process([Delta(DeltaType.REPLACED, relisted("1"))], False)
    assert registration.pending() == 1  # on_add
    informer._process([Delta(DeltaType.REPLACED, relisted("2"))], False)
    assert registration.pending() == 2  # on_update: the RV changed
    informer._process([Delta(DeltaType.REPLACED, relisted("2"))], False)
    assert registration.pending() == 2  # unchanged: not for this handler


def test_stop_waits_for_stuck_handlers_once_not_once_each(
    lw: FakeListerWatcher, stop: threading.Event
) -> None:
    """Three handlers stuck in ``on_add``: the informer gave each its own 5 s grace, one
    after the other (15 s to stop); the grace is now shared (about 5 s in all)."""
    import time

    lw.upsert(pod("a"), emit=False)
    release = threading.Event()
    entered = threading.Semaphore(0)

    def stuck(obj: Mapping[str, Any], initial: bool) -> None:
        entered.release()
        release.wait(60)

    informer = make(lw)
    for _ in range(3):
        informer.add_event_handler(on_add=stuck)
    try:
        informer.start(stop)
        for _ in range(3):
            assert entered.acquire(timeout=PATIENCE)
        started = time.monotonic()
        stop.set()
        assert informer.join(PATIENCE)
        assert time.monotonic() - started < 9.0
    finally:
        release.set()
