"""Tests for pycontroller.cache._real_fifo (checklist items 32-34; 35-36 in test_fifo.py)."""

from __future__ import annotations

from collections.abc import Sequence

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
    Delta,
    DeltaType,
    Queue,
    RealFIFO,
    meta_namespace_key,
)


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
