"""Tests for pycontroller.cache._real_fifo (checklist items 32-34; 35-36 in test_fifo.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from fifo_helpers import (
    ADDED,
    DELETED,
    REPLACED,
    RESYNC,
    UPDATED,
    Obj,
    drain,
    ignore,
    known,
    obj,
    tomb,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontroller.cache import (
    DeletedFinalStateUnknown,
    Delta,
    DeltaType,
    Queue,
    RealFIFO,
    meta_namespace_key,
)
from pycontroller.cache._fifo import ProcessFunc, unwrap
from pycontroller.cache._real_fifo import RELIST_BATCH


@contextmanager
def popping(pop: Callable[[ProcessFunc[Obj]], object]) -> Iterator[None]:
    """Run ``pop`` on a thread whose ``process`` blocks: the body runs while the popped
    entries are in flight; on exit they are released and the pop has returned."""
    inside, release = threading.Event(), threading.Event()

    def slow(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        inside.set()
        assert release.wait(10)

    popper = threading.Thread(target=pop, args=(slow,))
    popper.start()
    assert inside.wait(10)
    try:
        yield
    finally:
        release.set()
        popper.join(10)
    assert not popper.is_alive()

def test_real_fifo_is_a_queue() -> None:
    queue: Queue[Obj] = RealFIFO(known_objects=known())  # checked by mypy
    assert len(queue) == 0


def test_add_update_update_pop_separately_in_order() -> None:  # item 32
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    fifo.add(obj("a", 1))
    fifo.update(obj("a", 2))
    fifo.update(obj("a", 3))
    assert drain(fifo) == [(Delta(ADDED, obj("a", 1)),), (Delta(UPDATED, obj("a", 2)),),
                           (Delta(UPDATED, obj("a", 3)),)]


def test_deletes_are_never_dropped_or_collapsed() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    fifo.delete(obj("never-seen"))
    fifo.delete(obj("never-seen", 2))
    assert drain(fifo) == [(Delta(DELETED, obj("never-seen")),),
                           (Delta(DELETED, obj("never-seen", 2)),)]


def test_replace_queues_deletions_before_replacements_as_one_entry() -> None:  # item 33
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("a", 1), obj("gone", 4)))
    fifo.replace([obj("a", 2), obj("new", 3)], "5")
    assert len(fifo) == 1
    assert fifo.pop(ignore) == (Delta[Obj](DELETED, tomb("gone", obj("gone", 4))),
                                Delta(REPLACED, obj("a", 2)), Delta(REPLACED, obj("new", 3)))


def test_replace_tombstones_pending_unlisted_keys_with_newest_pending_state() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("a", 1)))
    fifo.update(obj("a", 2))
    fifo.add(obj("b", 3))
    fifo.replace([], "4")
    assert drain(fifo)[-1] == (Delta[Obj](DELETED, tomb("a", obj("a", 2))),
                               Delta[Obj](DELETED, tomb("b", obj("b", 3))))


def test_replace_adds_no_tombstone_for_key_whose_last_pending_delta_is_a_delete() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("a", 1)))
    fifo.delete(obj("a", 2))
    fifo.replace([], "3")
    assert drain(fifo) == [(Delta(DELETED, obj("a", 2)),)]


def test_replace_unwraps_a_pending_tombstone() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    fifo.update(obj("a", 1))
    fifo.replace([], "2")  # tombstone for "a"
    fifo.add(obj("a", 3))
    fifo.replace([], "4")
    assert drain(fifo)[-1] == (Delta[Obj](DELETED, tomb("a", obj("a", 3))),)


def test_empty_replace_with_nothing_to_delete_queues_nothing_and_syncs() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    fifo.replace([], "1")
    assert len(fifo) == 0
    assert fifo.has_synced()


def test_has_synced_only_after_processing_of_last_initial_item_returns() -> None:  # item 34
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("gone")))
    fifo.resync()  # queued before the first list: part of the initial population
    fifo.replace([obj("a"), obj("b")], "2")
    fifo.add(obj("late"))
    seen: list[tuple[int, bool, bool]] = []

    def record(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        seen.append((len(deltas), is_in_initial_list, fifo.has_synced()))

    fifo.pop(record)
    assert not fifo.has_synced()
    fifo.pop(record)  # the list, atomically: tombstone for "gone", then a and b
    assert fifo.has_synced()
    fifo.pop(record)
    assert seen == [(1, True, False), (3, True, False), (1, False, True)]


def test_has_synced_counts_the_initial_list_as_pending_until_processed() -> None:  # item 34
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    fifo.replace([obj("a")], "1")
    inside: list[bool] = []

    def record(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        inside.append(fifo.has_synced())

    fifo.pop(record)
    assert inside == [False]
    assert fifo.has_synced()


def test_resync_queues_one_entry_skipping_pending_keys() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(
        known_objects=known(obj("a", 1), obj("b", 1), obj("c", 1)))
    fifo.update(obj("a", 2))
    fifo.resync()
    assert drain(fifo) == [(Delta(UPDATED, obj("a", 2)),),
                           (Delta(RESYNC, obj("b", 1)), Delta(RESYNC, obj("c", 1)))]


def test_resync_with_empty_cache_queues_nothing() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    fifo.resync()
    assert len(fifo) == 0


# ---- property: events pop one by one, in order ---------------------------------------------

event = st.tuples(st.sampled_from([ADDED, UPDATED, DELETED]), st.sampled_from("abc"))


@settings(database=None, deadline=None, max_examples=200)
@given(st.lists(event, max_size=40))
def test_every_event_pops_alone_in_arrival_order(events: list[tuple[DeltaType, str]]) -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    expected = []
    for rv, (kind, name) in enumerate(events):
        o = obj(name, rv)
        {ADDED: fifo.add, UPDATED: fifo.update, DELETED: fifo.delete}[kind](o)
        expected.append((Delta(kind, o),))
    assert drain(fifo) == expected
    assert all(meta_namespace_key(e[0].obj) for e in expected)


# ---- streamed relists (start_relist: what the Reflector uses) --------------------------------

def test_streamed_relist_queues_batches_as_they_arrive_and_tombstones_last() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("a", 1), obj("gone", 4)))
    relist = fifo.start_relist()
    names = ["a", *(f"p{i}" for i in range(RELIST_BATCH))]
    for i, name in enumerate(names):
        relist.add(obj(name, 10 + i))
    assert len(fifo) == 1  # a full batch is queued before the list ends
    relist.finish("99")
    popped = drain(fifo)
    assert [len(entry) for entry in popped] == [RELIST_BATCH, 1, 1]
    assert popped[0][0] == Delta(REPLACED, obj("a", 10))
    assert all(d.type is REPLACED for entry in popped[:2] for d in entry)
    assert popped[2] == (Delta[Obj](DELETED, tomb("gone", obj("gone", 4))),)  # at the end


def test_streamed_relist_tombstones_pending_unlisted_keys_with_newest_pending_state() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("a", 1)))
    fifo.update(obj("a", 2))
    fifo.add(obj("b", 3))
    fifo.delete(obj("c", 4))  # last pending delta a deletion: no tombstone
    relist = fifo.start_relist()
    relist.add(obj("b", 5))
    relist.finish("6")
    assert drain(fifo)[-2:] == [(Delta(REPLACED, obj("b", 5)),),
                                (Delta[Obj](DELETED, tomb("a", obj("a", 2))),)]


def test_streamed_first_list_syncs_only_once_finished_and_processed() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    relist = fifo.start_relist()
    for i in range(RELIST_BATCH + 1):
        relist.add(obj(f"p{i}"))
    seen: list[tuple[bool, bool]] = []

    def record(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        seen.append((is_in_initial_list, fifo.has_synced()))

    fifo.pop(record)  # the first batch, applied while the list still arrives
    assert not fifo.has_synced()
    relist.finish("2")
    assert not fifo.has_synced()  # the rest is queued, not processed
    fifo.pop(record)
    assert fifo.has_synced()
    fifo.add(obj("late"))
    fifo.pop(record)
    assert seen == [(True, False), (True, False), (False, True)]


def test_streamed_first_list_counts_an_entry_in_flight_at_finish() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    relist = fifo.start_relist()
    for i in range(RELIST_BATCH):
        relist.add(obj(f"p{i}"))  # one full batch: queued
    with popping(fifo.pop):
        relist.finish("2")  # nothing left to queue; the batch is still being processed
        assert not fifo.has_synced()
    assert fifo.has_synced()


def test_abandoned_streamed_list_queues_real_objects_only_and_does_not_sync() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("old", 1)))
    broken = fifo.start_relist()
    for i in range(RELIST_BATCH + 5):
        broken.add(obj(f"p{i}", 2))  # the stream breaks here: never finished
    popped = drain(fifo)
    assert [len(entry) for entry in popped] == [RELIST_BATCH]  # the unqueued 5 are dropped
    assert all(d.type is REPLACED and d.obj == obj(f"p{i}", 2)
               for i, d in enumerate(popped[0]))
    assert not fifo.has_synced()  # no complete list yet, and no tombstone for "old"


def test_streamed_relist_after_a_broken_one_tombstones_what_it_left_in_the_cache() -> None:
    indexer = known(obj("old", 1))
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=indexer)

    def apply(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        for d in deltas:
            if isinstance(d.obj, DeletedFinalStateUnknown) or d.type is DELETED:
                indexer.delete(d.obj)
            else:
                indexer.update(d.obj)

    broken = fifo.start_relist()
    for i in range(RELIST_BATCH):
        broken.add(obj(f"p{i}", 2))
    while len(fifo):
        fifo.pop(apply)
    assert len(indexer) == RELIST_BATCH + 1  # new versions in place, nothing deleted
    complete = fifo.start_relist()
    complete.add(obj("p0", 3))
    complete.finish("4")
    while len(fifo):
        fifo.pop(apply)
    assert indexer.list_keys() == ["ns/p0"] and indexer.get_by_key("ns/p0") == obj("p0", 3)


def test_streamed_relist_remove_and_restart() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("k", 1)))
    relist = fifo.start_relist()
    relist.add(obj("k", 2))
    relist.add(obj("x", 2))
    relist.remove(obj("x", 3))  # not queued yet: dropped
    relist.add(obj("k", 4))  # replaces the unqueued "k" in place
    assert relist.count == 3
    relist.finish("5")
    assert drain(fifo) == [(Delta(REPLACED, obj("k", 4)),)]

    relist = fifo.start_relist()
    for i in range(RELIST_BATCH):
        relist.add(obj(f"p{i}"))  # queued
    relist.remove(obj("p0"))  # queued already: it gets a tombstone at the end
    relist.restart()  # e.g. an expired continuation: the list starts over
    relist.add(obj("p1", 7))
    relist.finish("8")
    popped = drain(fifo)
    assert popped[1] == (Delta(REPLACED, obj("p1", 7)),)
    tombs = {d.obj.key for d in popped[2]}  # type: ignore[union-attr]
    assert tombs == {f"ns/p{i}" for i in range(RELIST_BATCH) if i != 1} | {"ns/k"}


def test_streamed_relist_transforms_once_and_drops_objects_without_a_key() -> None:
    calls: list[str] = []

    def transform(o: Obj) -> Obj:
        calls.append(o["metadata"].get("name", "?"))
        return {**o, "t": True}

    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(), transform=transform)
    relist = fifo.start_relist()
    relist.add(obj("a"))
    relist.add({"metadata": {}})  # no name: logged and left out
    relist.finish("1")
    assert drain(fifo) == [(Delta(REPLACED, {**obj("a"), "t": True}),)]
    assert calls == ["a", "?"] and relist.count == 1


# ---- pop_batch (what the informer uses) ------------------------------------------------------


def test_pop_batch_hands_over_whole_entries_in_order_up_to_the_limit() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    fifo.replace([], "1")  # the (empty) first list: synced
    for i in range(5):
        fifo.update(obj("a", i))  # several deltas of one key may share a batch
    fifo.delete(obj("b"))
    batches: list[list[tuple[DeltaType, str]]] = []

    def record(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        assert not is_in_initial_list
        batches.append([(d.type, unwrap(d.obj)["metadata"]["resourceVersion"])  # type: ignore[index]
                        for d in deltas])

    fifo.pop_batch(record, max_deltas=4)
    fifo.pop_batch(record, max_deltas=4)
    assert batches == [[(UPDATED, "0"), (UPDATED, "1"), (UPDATED, "2"), (UPDATED, "3")],
                       [(UPDATED, "4"), (DELETED, "1")]]
    assert len(fifo) == 0


def test_pop_batch_takes_a_larger_entry_whole_and_alone() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    fifo.replace([], "1")
    fifo.add(obj("first"))
    fifo.replace([obj(f"p{i}") for i in range(5)], "2")  # one entry of 5 (+1 tombstone)
    sizes: list[int] = []

    def record(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        sizes.append(len(deltas))

    fifo.pop_batch(record, max_deltas=3)  # "first"; the list would pass the limit...
    assert len(fifo) == 1
    fifo.pop_batch(record, max_deltas=3)  # ...so it comes whole (tombstone + 5), alone
    assert sizes == [1, 6]


def test_pop_batch_never_mixes_the_first_list_with_what_follows() -> None:
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known())
    relist = fifo.start_relist()
    for i in range(RELIST_BATCH + 1):
        relist.add(obj(f"p{i}"))
    relist.finish("2")  # entries: a full batch, then the rest of the list
    fifo.add(obj("late"))
    fifo.update(obj("late", 2))
    seen: list[tuple[int, bool, bool]] = []

    def record(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        seen.append((len(deltas), is_in_initial_list, fifo.has_synced()))

    while len(fifo):
        fifo.pop_batch(record, max_deltas=10_000)
    # the whole initial population in one batch, the two later events in the next
    assert seen == [(RELIST_BATCH + 1, True, False), (2, False, True)]
    assert fifo.has_synced()


def test_pop_batch_counts_every_entry_it_took_for_has_synced() -> None:
    """A first list that completes while a batch of several of its entries is in flight
    syncs only once that batch and the rest of the list were processed."""
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=known(obj("gone")))
    relist = fifo.start_relist()
    for i in range(2 * RELIST_BATCH):
        relist.add(obj(f"p{i}"))  # two full entries, taken as one batch
    with popping(fifo.pop_batch):
        relist.finish("3")  # queues the tombstone of "gone" behind the batch
    assert len(fifo) == 1
    assert not fifo.has_synced()  # the tombstone is still queued
    fifo.pop_batch(ignore)
    assert fifo.has_synced()


def test_a_relist_during_a_batch_tombstones_every_key_of_the_batch() -> None:
    """The keys of the whole batch count as pending, as for a single entry in flight."""
    store = known()
    fifo: RealFIFO[Obj] = RealFIFO(known_objects=store)
    fifo.replace([], "1")
    fifo.add(obj("a"))
    fifo.add(obj("b", 2))
    inside, release = threading.Event(), threading.Event()

    def apply_slowly(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        if len(deltas) == 2:
            inside.set()
            assert release.wait(10)
            for d in deltas:
                store.add(unwrap(d.obj))  # type: ignore[arg-type]

    popper = threading.Thread(target=fifo.pop_batch, args=(apply_slowly,))
    popper.start()
    assert inside.wait(10)
    fifo.replace([], "5")  # neither a nor b is listed any more
    release.set()
    popper.join(10)
    (entry,) = drain(fifo)
    expected: list[Delta[Obj]] = [Delta(DELETED, tomb("a", obj("a"))),
                                  Delta(DELETED, tomb("b", obj("b", 2)))]
    assert sorted(entry, key=lambda d: str(d.obj)) == expected
