"""Tests for pycontroller.cache._delta_fifo (checklist items 26-31; 35-36 in test_fifo.py)."""

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
    DeltaFIFO,
    DeltaType,
    Queue,
    meta_namespace_key,
)


def test_delta_fifo_is_a_queue() -> None:
    queue: Queue[Obj] = DeltaFIFO()  # checked by mypy
    assert len(queue) == 0


def test_add_then_update_pop_as_one_entry_holding_both() -> None:  # item 26
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    fifo.add(obj("a", 1))
    fifo.update(obj("a", 2))
    assert len(fifo) == 1
    assert fifo.pop(ignore) == (Delta(ADDED, obj("a", 1)), Delta(UPDATED, obj("a", 2)))


def test_keys_pop_in_the_order_first_queued() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    for name in ["b", "a", "b", "c", "a"]:
        fifo.update(obj(name))
    assert [meta_namespace_key(e[0].obj) for e in drain(fifo)] == ["ns/b", "ns/a", "ns/c"]


def test_two_consecutive_deletes_collapse_into_the_older() -> None:  # item 27
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    fifo.add(obj("a", 1))
    fifo.delete(obj("a", 2))
    fifo.delete(obj("a", 3))
    assert fifo.pop(ignore) == (Delta(ADDED, obj("a", 1)), Delta(DELETED, obj("a", 2)))


def test_tombstone_after_real_deletion_loses() -> None:  # item 27
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known(obj("a", 1)))
    fifo.delete(obj("a", 2))
    fifo.replace([], "3")  # a tombstone for the queued key collapses into the real delete
    assert drain(fifo) == [(Delta(DELETED, obj("a", 2)),)]


def test_real_deletion_after_tombstone_wins() -> None:  # item 27
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known(obj("a", 1)))
    fifo.replace([], "2")
    fifo.delete(obj("a", 3))
    assert drain(fifo) == [(Delta(DELETED, obj("a", 3)),)]


def test_deletes_separated_by_another_delta_are_not_collapsed() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    fifo.add(obj("a", 1))
    fifo.delete(obj("a", 2))
    fifo.add(obj("a", 3))
    fifo.delete(obj("a", 4))
    assert [d.type for d in fifo.pop(ignore)] == [ADDED, DELETED, ADDED, DELETED]


def test_delete_of_key_unknown_to_queue_and_indexer_is_dropped() -> None:  # item 28
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known(obj("other")))
    fifo.delete(obj("a"))
    assert len(fifo) == 0


def test_delete_of_key_known_to_indexer_is_queued() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known(obj("a", 1)))
    fifo.delete(obj("a", 2))
    assert fifo.pop(ignore) == (Delta(DELETED, obj("a", 2)),)


def test_without_known_objects_only_deletes_of_queued_keys_are_kept() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    fifo.delete(obj("a"))
    assert len(fifo) == 0
    fifo.add(obj("b"))
    fifo.delete(obj("b"))
    assert [d.type for d in fifo.pop(ignore)] == [ADDED, DELETED]


def test_replace_emits_replaced_and_tombstones_with_last_known_state() -> None:  # item 29
    stale_b = obj("b", 7)
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known(obj("a", 1), stale_b))
    fifo.replace([obj("a", 9)], "10")
    assert drain(fifo) == [(Delta(REPLACED, obj("a", 9)),),
                           (Delta[Obj](DELETED, tomb("b", stale_b)),)]


def test_replace_tombstones_queued_unlisted_key_with_newest_queued_object() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known())
    fifo.add(obj("a", 1))
    fifo.update(obj("a", 2))
    fifo.replace([], "3")
    assert fifo.pop(ignore) == (Delta(ADDED, obj("a", 1)), Delta(UPDATED, obj("a", 2)),
                                Delta[Obj](DELETED, tomb("a", obj("a", 2))))


def test_replace_without_known_objects_only_tombstones_queued_keys() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    fifo.add(obj("a"))
    fifo.replace([obj("b")], "2")
    assert drain(fifo) == [(Delta(ADDED, obj("a")), Delta[Obj](DELETED, tomb("a", obj("a")))),
                           (Delta(REPLACED, obj("b")),)]


def test_resync_skips_keys_that_have_queued_deltas() -> None:  # item 30
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known(obj("a", 1), obj("b", 1)))
    fifo.update(obj("a", 2))
    fifo.resync()
    assert drain(fifo) == [(Delta(UPDATED, obj("a", 2)),), (Delta(RESYNC, obj("b", 1)),)]


def test_resync_without_known_objects_does_nothing() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    fifo.resync()
    assert len(fifo) == 0


def test_has_synced_exactly_when_last_initially_listed_key_is_popped() -> None:  # item 31
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known())
    assert not fifo.has_synced()
    fifo.replace([obj("a"), obj("b")], "1")
    fifo.add(obj("c"))  # arrives after the list: not part of the initial population
    seen: list[tuple[str, bool, bool]] = []

    def record(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        seen.append((meta_namespace_key(deltas[0].obj), is_in_initial_list, fifo.has_synced()))

    fifo.pop(record)
    assert not fifo.has_synced()
    fifo.pop(record)
    assert fifo.has_synced()
    fifo.pop(record)
    assert seen == [("ns/a", True, False), ("ns/b", True, False), ("ns/c", False, True)]


def test_initial_population_counts_tombstones() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known(obj("gone")))
    fifo.replace([obj("a")], "1")
    fifo.pop(ignore)
    assert not fifo.has_synced()
    fifo.pop(ignore)
    assert fifo.has_synced()


def test_empty_initial_list_is_synced_at_once() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known())
    fifo.replace([], "1")
    assert fifo.has_synced()


def test_events_before_first_replace_count_as_synced() -> None:  # client-go's rule
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    fifo.add(obj("a"))
    assert fifo.has_synced()


def test_later_replaces_do_not_reset_sync() -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO(known_objects=known())
    fifo.replace([], "1")
    fifo.replace([obj("a")], "2")
    assert fifo.has_synced()
    assert fifo.pop(ignore) == (Delta(REPLACED, obj("a")),)


# ---- property: ordering and coalescing match a naive model --------------------------------

event = st.tuples(st.sampled_from([ADDED, UPDATED, DELETED]), st.sampled_from("abc"))


@settings(database=None, deadline=None, max_examples=300)
@given(st.lists(event, max_size=40))
def test_queue_order_and_coalescing_match_a_model(events: list[tuple[DeltaType, str]]) -> None:
    fifo: DeltaFIFO[Obj] = DeltaFIFO()
    model: dict[str, list[Delta[Obj]]] = {}  # insertion order = queue order
    for rv, (kind, name) in enumerate(events):
        o = obj(name, rv)
        {ADDED: fifo.add, UPDATED: fifo.update, DELETED: fifo.delete}[kind](o)
        if kind is DELETED and name not in model:
            continue  # dropped: neither queued nor known
        deltas = model.setdefault(name, [])
        if kind is DELETED and deltas and deltas[-1].type is DELETED:
            continue  # consecutive deletes: the older (a real one) is kept
        deltas.append(Delta(kind, o))
    assert drain(fifo) == [tuple(deltas) for deltas in model.values()]
