"""Behaviour both FIFOs share (pycontroller.cache._fifo): closing, blocking and serialised
pops, unlocked processing, the transform rule, and end-to-end consistency of an informer-like
consumer (checklist items 35 and 36, plus the properties the informer relies on)."""

from __future__ import annotations

import copy
import pickle
import threading
from collections.abc import Callable, Sequence
from typing import Any, cast

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pycontroller._util._wait import wait_for
from pycontroller.cache import (
    DeletedFinalStateUnknown,
    Delta,
    DeltaFIFO,
    DeltaType,
    ObjectKey,
    ProcessFunc,
    Queue,
    RealFIFO,
    ThreadSafeStore,
    TransformFunc,
)
from pycontroller.cache._fifo import unwrap
from pycontroller.errors import ShutDownError

Obj = dict[str, Any]
Factory = Callable[..., Queue[Obj]]


def obj(name: str, rv: int = 1) -> Obj:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}


def delta_fifo(known: ThreadSafeStore[Obj], transform: TransformFunc[Obj] | None = None
               ) -> Queue[Obj]:
    return DeltaFIFO(known_objects=known, transform=transform)


def real_fifo(known: ThreadSafeStore[Obj], transform: TransformFunc[Obj] | None = None
              ) -> Queue[Obj]:
    return RealFIFO(known_objects=known, transform=transform)


FIFOS = pytest.mark.parametrize("make", [delta_fifo, real_fifo], ids=["DeltaFIFO", "RealFIFO"])


class _Batching:
    """A RealFIFO whose ``pop`` is ``pop_batch`` (as the informer pops it), in small batches
    so that runs of several entries and the batch limit both occur."""

    def __init__(self, fifo: RealFIFO[Obj]) -> None:
        self._fifo = fifo

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fifo, name)

    def __len__(self) -> int:
        return len(self._fifo)

    def pop(self, process: ProcessFunc[Obj]) -> tuple[Delta[Obj], ...]:
        return self._fifo.pop_batch(process, max_deltas=3)


def real_fifo_batches(known: ThreadSafeStore[Obj],
                      transform: TransformFunc[Obj] | None = None) -> Queue[Obj]:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known, transform=transform)
    return cast("Queue[Obj]", _Batching(fifo))


def applier(indexer: ThreadSafeStore[Obj]) -> ProcessFunc[Obj]:
    """The informer's processing in miniature: apply each delta to the indexer."""
    def process(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        for d in deltas:
            if d.type is DeltaType.DELETED:
                indexer.delete(d.obj)
            else:
                indexer.update(d.obj)  # type: ignore[arg-type]  # never a tombstone here
    return process


def ignore(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
    """A process function that does nothing."""


def waiters(fifo: Queue[Obj]) -> int:
    """Threads blocked in ``pop`` (CPython's Condition keeps them in ``_waiters``)."""
    return len(fifo._cond._waiters)  # type: ignore[attr-defined]


def start(target: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def join(thread: threading.Thread) -> None:
    thread.join(timeout=10)
    assert not thread.is_alive(), "thread did not finish before the deadline"


# ---- closing and blocking (item 35) ------------------------------------------------------

@FIFOS
def test_pop_on_closed_empty_queue_raises_shut_down(make: Factory) -> None:
    fifo = make(ThreadSafeStore())
    fifo.close()
    assert fifo.is_closed()
    with pytest.raises(ShutDownError):
        fifo.pop(ignore)


@FIFOS
def test_close_wakes_a_blocked_popper(make: Factory) -> None:
    fifo = make(ThreadSafeStore())
    raised: list[BaseException] = []

    def popper() -> None:
        try:
            fifo.pop(ignore)
        except ShutDownError as exc:
            raised.append(exc)

    thread = start(popper)
    wait_for(lambda: waiters(fifo) == 1, timeout=10, interval=0.001, message="blocked pop")
    fifo.close()
    join(thread)
    assert len(raised) == 1


@FIFOS
def test_closed_queue_drains_remaining_items_before_raising(make: Factory) -> None:
    fifo = make(ThreadSafeStore())
    fifo.add(obj("a"))
    fifo.close()
    assert fifo.pop(ignore)[0].obj == obj("a")
    with pytest.raises(ShutDownError):
        fifo.pop(ignore)


@FIFOS
def test_pop_blocks_until_an_item_arrives(make: Factory) -> None:
    fifo = make(ThreadSafeStore())
    popped: list[tuple[Delta[Obj], ...]] = []
    thread = start(lambda: popped.append(fifo.pop(ignore)))
    wait_for(lambda: waiters(fifo) == 1, timeout=10, interval=0.001, message="blocked pop")
    assert popped == []
    fifo.add(obj("a"))
    join(thread)
    assert popped == [(Delta(DeltaType.ADDED, obj("a")),)]


@FIFOS
def test_pops_are_serialised_while_process_runs(make: Factory) -> None:
    fifo = make(ThreadSafeStore())
    fifo.add(obj("a"))
    fifo.add(obj("b"))
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def slow(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        inside.set()
        assert release.wait(timeout=10)
        order.append("first-done")

    def fast(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        order.append("second")

    first = start(lambda: order.append(str(len(fifo.pop(slow)))))
    assert inside.wait(timeout=10)
    second = start(lambda: order.append(str(len(fifo.pop(fast)))))
    wait_for(lambda: waiters(fifo) == 1, timeout=10, interval=0.001, message="second popper")
    assert len(fifo) == 1  # "b" is still queued: the second popper waits for the first
    release.set()
    join(first)
    join(second)
    assert order == ["first-done", "1", "second", "1"]


@FIFOS
def test_process_runs_without_the_fifo_lock(make: Factory) -> None:
    fifo = make(ThreadSafeStore())
    fifo.add(obj("a"))

    def process(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        fifo.add(obj("b"))  # would deadlock if pop held the lock
        assert len(fifo) == 1

    fifo.pop(process)
    assert fifo.pop(ignore)[0].obj == obj("b")


@FIFOS
def test_pop_from_inside_process_raises_instead_of_deadlocking(make: Factory) -> None:
    fifo = make(ThreadSafeStore())
    fifo.add(obj("a"))
    fifo.add(obj("b"))

    def process(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        fifo.pop(ignore)

    with pytest.raises(RuntimeError, match="inside its own process"):
        fifo.pop(process)
    assert len(fifo) == 1


@FIFOS
def test_process_error_propagates_and_entry_is_not_requeued(make: Factory) -> None:
    fifo = make(ThreadSafeStore())
    fifo.replace([obj("a")], "1")

    def boom(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        raise ValueError("handler bug")

    with pytest.raises(ValueError, match="handler bug"):
        fifo.pop(boom)
    assert len(fifo) == 0
    assert fifo.has_synced()  # the failed entry still counts as processed


# ---- transform (item 36) -----------------------------------------------------------------

@FIFOS
def test_transform_runs_once_per_incoming_object_not_on_sync_or_tombstones(
        make: Factory) -> None:
    seen: list[str] = []

    def strip(o: Obj) -> Obj:
        seen.append(o["metadata"]["name"])
        o["metadata"].pop("managedFields", None)
        return o

    known: ThreadSafeStore[Obj] = ThreadSafeStore()
    known.add(obj("gone"))
    known.add(obj("kept"))
    fifo = make(known, strip)
    fifo.add(obj("a") | {"x": 1})
    fifo.update(obj("b"))
    fifo.delete(obj("c"))
    fifo.delete(DeletedFinalStateUnknown(ObjectKey("ns/d"), obj("d")))
    fifo.replace([obj("kept"), obj("e")], "5")  # "gone" becomes a tombstone
    assert sorted(seen) == ["a", "b", "c", "e", "kept"]
    while len(fifo):
        fifo.pop(ignore)
    fifo.resync()
    assert len(fifo) > 0
    while len(fifo):
        fifo.pop(ignore)
    assert sorted(seen) == ["a", "b", "c", "e", "kept"]


@FIFOS
def test_one_bad_object_does_not_lose_the_rest_of_a_list(make: Factory) -> None:
    """A transform that raises queues the object untransformed; an object without a key is
    left out and logged; the rest of the relist is queued either way."""
    from structlog.testing import capture_logs

    def picky(o: Obj) -> Obj:
        if o["metadata"]["name"] == "odd":
            raise ValueError("transform bug")
        return o | {"slim": True}

    fifo = make(ThreadSafeStore(), picky)
    with capture_logs() as logs:
        fifo.replace([obj("a"), obj("odd"), {"no": "metadata"}, obj("b")], "7")
        fifo.add(obj("odd"))
    popped: list[Any] = []
    while len(fifo):
        popped.extend(d.obj for d in fifo.pop(ignore))
    assert sorted((o["metadata"]["name"], o.get("slim")) for o in popped) == [
        ("a", True), ("b", True), ("odd", None), ("odd", None)]
    assert [e["event"] for e in logs] == ["transform_failed", "transform_failed",
                                          "fifo_object_dropped", "transform_failed"]


@FIFOS
def test_transform_result_is_what_gets_queued(make: Factory) -> None:
    fifo = make(ThreadSafeStore(), lambda o: {"metadata": o["metadata"], "slim": True})
    fifo.add(obj("a") | {"fat": "x" * 100})
    assert fifo.pop(ignore)[0].obj == obj("a") | {"slim": True}


# ---- the informer's view: relists during processing --------------------------------------

@FIFOS
def test_relist_while_an_add_is_in_flight_deletes_it_afterwards(make: Factory) -> None:
    indexer: ThreadSafeStore[Obj] = ThreadSafeStore()
    fifo = make(indexer)
    fifo.add(obj("a"))
    apply = applier(indexer)

    def process(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        fifo.replace([], "2")  # the server no longer has "a"; the indexer does not yet either
        apply(deltas, is_in_initial_list)

    fifo.pop(process)
    assert indexer.list_keys() == ["ns/a"]
    assert len(fifo) == 1
    (tombstone,) = fifo.pop(apply)
    assert tombstone == Delta[Obj](DeltaType.DELETED,
                                   DeletedFinalStateUnknown(ObjectKey("ns/a"), obj("a")))
    assert indexer.list_keys() == []


@FIFOS
def test_relist_while_a_delete_is_in_flight_adds_no_tombstone(make: Factory) -> None:
    indexer: ThreadSafeStore[Obj] = ThreadSafeStore()
    indexer.add(obj("a"))
    fifo = make(indexer)
    fifo.delete(obj("a"))
    apply = applier(indexer)

    def process(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        fifo.replace([], "2")
        apply(deltas, is_in_initial_list)

    fifo.pop(process)
    assert len(fifo) == 0


@FIFOS
def test_resync_skips_the_key_in_flight(make: Factory) -> None:
    indexer: ThreadSafeStore[Obj] = ThreadSafeStore()
    indexer.add(obj("a", rv=1))
    indexer.add(obj("b", rv=1))
    fifo = make(indexer)
    fifo.update(obj("a", rv=2))
    apply = applier(indexer)

    def process(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        fifo.resync()  # must not queue the stale rv=1 state of "a"
        apply(deltas, is_in_initial_list)

    fifo.pop(process)
    assert len(fifo) == 1
    (sync,) = fifo.pop(apply)
    assert sync == Delta(DeltaType.RESYNC, obj("b", rv=1))
    assert indexer.get_by_key("ns/a") == obj("a", rv=2)


# ---- property: an informer-like consumer converges to the server's state ------------------

names = st.sampled_from(["a", "b", "c", "d"])
server_op = st.one_of(
    st.tuples(st.sampled_from(["put", "delete", "put_unseen", "delete_unseen"]), names),
    st.tuples(st.sampled_from(["relist", "resync", "pop"]), st.none()),
)
step = st.one_of(
    server_op.map(lambda op: ("now", op)),
    server_op.map(lambda op: ("during_pop", op)),  # runs while an entry is being processed
)


class Server:
    """The API server in miniature; "unseen" changes model events lost while disconnected."""

    def __init__(self, fifo: Queue[Obj]) -> None:
        self.fifo = fifo
        self.objects: dict[str, Obj] = {}
        self.rv = 0
        self.lost_since_relist = False  # a change the FIFO never heard of, not yet relisted

    def run(self, op: str, name: str | None, process: Callable[..., None]) -> None:
        self.rv += 1
        if op in ("put", "put_unseen"):
            assert name is not None
            new = obj(name, self.rv)
            existed = name in self.objects
            self.objects[name] = new
            self.lost_since_relist |= op == "put_unseen"
            if op == "put":
                (self.fifo.update if existed else self.fifo.add)(new)
        elif op in ("delete", "delete_unseen"):
            old = self.objects.pop(name or "", None)
            self.lost_since_relist |= old is not None and op == "delete_unseen"
            if old is not None and op == "delete":
                self.fifo.delete(old)
        elif op == "relist":
            self.fifo.replace(list(self.objects.values()), str(self.rv))
            self.lost_since_relist = False
        elif op == "resync":
            self.fifo.resync()
        elif len(self.fifo):
            self.fifo.pop(process)


@pytest.mark.parametrize("make", [delta_fifo, real_fifo, real_fifo_batches],
                         ids=["DeltaFIFO", "RealFIFO", "RealFIFO.pop_batch"])
@settings(database=None, deadline=None, max_examples=300)
@given(steps=st.lists(step, max_size=25))
# Relists racing with processing: an add in flight while the server lost the object, a
# delete in flight, an update in flight during a resync.
@example(steps=[("now", ("put", "a")), ("now", ("delete_unseen", "a")),
                ("during_pop", ("relist", None))])
@example(steps=[("now", ("put", "a")), ("now", ("pop", None)), ("now", ("delete", "a")),
                ("during_pop", ("relist", None))])
@example(steps=[("now", ("put", "a")), ("now", ("pop", None)), ("now", ("put", "a")),
                ("during_pop", ("resync", None))])
def test_consumer_converges_to_server_state_after_a_relist(
        make: Factory, steps: list[tuple[str, tuple[str, str | None]]]) -> None:
    indexer: ThreadSafeStore[Obj] = ThreadSafeStore()
    fifo = make(indexer)
    server = Server(fifo)
    apply = applier(indexer)
    for when, (op, name) in steps:
        if when == "now":
            server.run(op, name, apply)
        elif len(fifo):
            def during(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool,
                       op: str = op, name: str | None = name) -> None:
                server.run(op if op != "pop" else "resync", name, apply)
                apply(deltas, is_in_initial_list)
            fifo.pop(during)
    while len(fifo):
        fifo.pop(apply)
    if not server.lost_since_relist:
        assert {o["metadata"]["name"]: o for o in indexer.list()} == server.objects
    server.run("relist", None, apply)
    while len(fifo):
        fifo.pop(apply)
    assert {o["metadata"]["name"]: o for o in indexer.list()} == server.objects
    assert fifo.has_synced()


def test_unwrap_returns_tombstone_content() -> None:
    tombstone: Obj | DeletedFinalStateUnknown[Obj] = DeletedFinalStateUnknown(ObjectKey("k"),
                                                                             obj("a"))
    assert unwrap(tombstone) == obj("a")
    assert unwrap(obj("a")) == obj("a")


def test_delta_is_frozen_slotted_copyable_and_buildable_through_an_alias() -> None:
    delta = Delta[Obj](DeltaType.ADDED, obj("a"))
    assert not hasattr(delta, "__dict__")
    with pytest.raises(AttributeError):
        delta.type = DeltaType.UPDATED  # type: ignore[misc]
    assert copy.deepcopy(delta) == delta
    assert pickle.loads(pickle.dumps(delta)) == delta
    assert str(DeltaType.RESYNC) == "Sync"
