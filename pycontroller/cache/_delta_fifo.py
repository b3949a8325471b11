"""The classic per-key coalescing FIFO (≙ tools/cache/delta_fifo.go).

Data flow: Reflector → ``DeltaFIFO`` → ``pop(process)`` → informer (indexer + handlers).
Shared informers use the in-order :class:`RealFIFO` (as client-go does since v0.33); this one
is for custom controllers that want per-key history, and for code written against the
classic client-go model.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Generic, TypeVar, final

import structlog

from pycontroller.cache._fifo import Delta, DeltaType, TransformFunc, _FIFOBase, unwrap
from pycontroller.cache._keys import DeletedFinalStateUnknown, ObjectKey

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pycontroller.cache._store import KeyFunc, KeyListerGetter

__all__ = ["Delta", "DeltaFIFO", "DeltaType"]

_log = structlog.get_logger(__name__)

_T = TypeVar("_T")


@final
class DeltaFIFO(_FIFOBase[_T], Generic[_T]):
    """A FIFO of keys, each holding the list of its not yet processed deltas.

    Contract (client-go semantics):
        - every key is queued at most once; its deltas accumulate oldest → newest and are
          popped together. Keys pop in the order they were first queued.
        - nothing is coalesced except two consecutive ``DELETED`` deltas, which collapse into
          one: the older, unless the older is a tombstone — a real deletion wins over a
          tombstone. ``ADDED`` then ``UPDATED`` stay two deltas.
        - ``delete`` of a key that is neither queued nor in ``known_objects`` is dropped (a
          relist already reported it); without ``known_objects``, any unqueued key is dropped.
        - ``replace(list, rv)`` queues ``REPLACED`` per listed object, then a ``DELETED``
          tombstone (``DeletedFinalStateUnknown``) for every queued key not listed (holding
          its newest queued object) and for every ``known_objects`` key not listed and not
          queued (holding the indexer's object, the last known state). A tombstone behind a
          real deletion collapses into it.
        - ``resync()`` queues ``RESYNC`` with the indexer's object for each known key that has
          no queued (or in-flight) deltas, so it never replays an older state than queued.
        - the transform runs once per object given to ``add``/``update``/``delete``/
          ``replace``; never on ``RESYNC`` objects or tombstones.
        - ``has_synced`` turns true when the ``pop`` of the last key counted by the first
          ``replace`` (listed keys + its tombstones) returns; ``is_in_initial_list`` is true
          for those pops.
        - see ``_FIFOBase.pop`` for popping, closing and the unlocked ``process`` call.

    Thread-safety: thread-safe. One lock; ``process``, ``transform`` and the key function
    run without it; ``known_objects`` is read while holding it (it must not call back).

    Invariants:
        - ``k in _queue`` ⇔ ``k in _items``; ``_queue`` has no duplicates;
        - every ``_items[k]`` is non-empty and has no two consecutive ``DELETED`` deltas.
    """

    def __init__(
        self,
        *,
        key_func: KeyFunc[_T] | None = None,
        known_objects: KeyListerGetter[_T] | None = None,
        transform: TransformFunc[_T] | None = None,
    ) -> None:
        """Create an empty FIFO.

        Args:
            key_func: default ``meta_namespace_key``; must accept tombstones.
            known_objects: the indexer the popped deltas are applied to (the informer's),
                used for tombstones, delete suppression and resync. ``None``: none of those.
            transform: applied once to every incoming object.
        """
        super().__init__(key_func=key_func, known_objects=known_objects, transform=transform)
        self._items: dict[ObjectKey, list[Delta[_T]]] = {}  # guarded by _cond
        self._queue: deque[ObjectKey] = deque()  # guarded by _cond; invariant: set == _items

    def add(self, obj: _T) -> None:
        """Queue an ``ADDED`` delta."""
        self._enqueue(DeltaType.ADDED, self._incoming(obj))

    def update(self, obj: _T) -> None:
        """Queue an ``UPDATED`` delta."""
        self._enqueue(DeltaType.UPDATED, self._incoming(obj))

    def delete(self, obj: _T | DeletedFinalStateUnknown[_T]) -> None:
        """Queue a ``DELETED`` delta, unless the deletion was already reported (see class)."""
        obj = self._incoming_deletion(obj)
        key = self._key_func(obj)
        with self._cond:
            self._populated = True
            if key not in self._items and (
                self._known_objects is None or not self._known_state_locked(key)[0]
            ):
                return
            self._queue_action_locked(DeltaType.DELETED, obj, key)
            self._wake_locked()

    def replace(self, objects: Iterable[_T], resource_version: str) -> None:
        """Queue a (re)list result and tombstones for vanished objects, atomically.

        Args:
            objects: the listed objects, in server order.
            resource_version: the list's resourceVersion (unused; kept for the Queue contract).
        """
        keyed = self._incoming_keyed(objects)
        missing: list[ObjectKey] = []
        with self._cond:
            listed: set[ObjectKey] = set()
            for key, obj in keyed:
                listed.add(key)
                self._queue_action_locked(DeltaType.REPLACED, obj, key)
            queued_deletions = 0
            for key, deltas in list(self._items.items()):
                if key in listed:
                    continue
                last = unwrap(deltas[-1].obj)
                self._queue_action_locked(
                    DeltaType.DELETED, DeletedFinalStateUnknown(key, last), key
                )
                queued_deletions += 1
            if self._known_objects is not None:
                for key in self._known_keys_locked():
                    if key in listed or key in self._items:
                        continue
                    exists, last = self._known_state_locked(key)
                    if not exists:
                        missing.append(key)
                    self._queue_action_locked(
                        DeltaType.DELETED, DeletedFinalStateUnknown(key, last), key
                    )
                    queued_deletions += 1
            if not self._populated:
                self._populated = True
                self._initial_population_count = len(listed) + queued_deletions
            self._wake_locked()
        for key in missing:
            _log.warning("fifo_known_object_missing", key=key, fifo="delta_fifo")

    def resync(self) -> None:
        """Queue ``RESYNC`` for every known key without queued or in-flight deltas."""
        if self._known_objects is None:
            return
        missing: list[ObjectKey] = []
        with self._cond:
            for key in self._known_objects.list_keys():
                if key in self._items or key in self._in_flight:
                    continue
                obj = self._known_objects.get_by_key(key)
                if obj is None:
                    missing.append(key)
                    continue
                self._queue_action_locked(DeltaType.RESYNC, obj, key)
            self._wake_locked()
        for key in missing:
            _log.warning("fifo_known_object_missing", key=key, fifo="delta_fifo")

    def __len__(self) -> int:
        """Return the number of queued keys."""
        with self._cond:
            return len(self._queue)

    # ---- internals (all called with _cond held) -------------------------------------------

    def _enqueue(self, delta_type: DeltaType, obj: _T) -> None:
        key = self._key_func(obj)
        with self._cond:
            self._populated = True
            self._queue_action_locked(delta_type, obj, key)
            self._wake_locked()

    def _queue_action_locked(
        self, delta_type: DeltaType, obj: _T | DeletedFinalStateUnknown[_T], key: ObjectKey
    ) -> None:
        delta = Delta(delta_type, obj)
        deltas = self._items.get(key)
        if deltas is None:
            self._items[key] = [delta]
            self._queue.append(key)
        else:
            deltas.append(delta)
            _collapse_deletions(deltas)

    def _known_state_locked(self, key: ObjectKey) -> tuple[bool, _T | None]:
        """Whether ``key`` will be in the indexer once the in-flight entry is applied, and
        its object there (queued deltas not considered)."""
        in_flight = self._in_flight.get(key)
        if in_flight is not None:
            return in_flight.type is not DeltaType.DELETED, unwrap(in_flight.obj)
        assert self._known_objects is not None
        obj = self._known_objects.get_by_key(key)
        return obj is not None, obj

    def _known_keys_locked(self) -> list[ObjectKey]:
        """The indexer's keys as they will be once the in-flight entry is applied."""
        assert self._known_objects is not None
        keys = self._known_objects.list_keys()
        if not self._in_flight:
            return keys
        result = [key for key in keys if key not in self._in_flight]
        result.extend(
            key for key, delta in self._in_flight.items() if delta.type is not DeltaType.DELETED
        )
        return result

    def _has_entries_locked(self) -> bool:
        return bool(self._queue)

    def _head_size_locked(self) -> int:
        return len(self._items[self._queue[0]])

    def _take_locked(self, in_flight: dict[ObjectKey, Delta[_T]]) -> tuple[Delta[_T], ...]:
        key = self._queue.popleft()
        deltas = tuple(self._items.pop(key))
        in_flight[key] = deltas[-1]
        return deltas


def _collapse_deletions(deltas: list[Delta[_T]]) -> None:
    """Merge the last two deltas if both are deletions (a real one beats a tombstone)."""
    if len(deltas) < 2:
        return
    newer, older = deltas[-1], deltas[-2]
    if newer.type is not DeltaType.DELETED or older.type is not DeltaType.DELETED:
        return
    keep = newer if isinstance(older.obj, DeletedFinalStateUnknown) else older
    deltas[-2:] = [keep]
