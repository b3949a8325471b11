"""The in-order FIFO shared informers use (≙ tools/cache/the_real_fifo.go, InOrderInformers).

Data flow: Reflector → ``RealFIFO`` → ``pop(process)`` → informer (indexer + handlers).
client-go switched shared informers from DeltaFIFO to this queue in v0.33 (GA in v0.36):
handlers see every event in arrival order, and a relist is applied as one unit.
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

__all__ = ["RealFIFO"]

_log = structlog.get_logger(__name__)

_T = TypeVar("_T")

# One queue entry: the keys of its deltas and the deltas, in order, popped together.
_Entry = tuple[tuple[ObjectKey, ...], tuple[Delta[_T], ...]]


@final
class RealFIFO(_FIFOBase[_T], Generic[_T]):
    """A FIFO of deltas in arrival order, with atomic relists.

    Contract:
        - every ``add``/``update``/``delete`` is its own entry, popped alone and in order;
          nothing is coalesced or dropped (a ``delete`` of an object the cache never had
          still pops, so the handler still gets ``on_delete``).
        - ``replace(list, rv)`` queues ONE entry: first a ``DELETED`` tombstone
          (``DeletedFinalStateUnknown``) for every key that is pending (queued or in flight,
          newest delta not a deletion) or known to ``known_objects`` but not listed — holding
          the newest pending object, else the indexer's, i.e. the last known state — then a
          ``REPLACED`` delta per listed object in list order. One ``pop`` hands the whole
          entry to ``process``, so no other event is applied in the middle of a relist
          (client-go's AtomicFIFO gives the same guarantee with a ``ReplacedAll`` delta).
        - ``resync()`` queues ONE entry of ``RESYNC`` deltas: the indexer's object for each
          known key that has nothing pending.
        - the transform runs once per object given to ``add``/``update``/``delete``/
          ``replace``; never on ``RESYNC`` objects or tombstones.
        - ``has_synced`` turns true only after ``process`` returned for the last entry that
          was queued when the first ``replace`` finished; ``is_in_initial_list`` is true for
          those pops.
        - see ``_FIFOBase.pop`` for popping, closing and the unlocked ``process`` call.

    Thread-safety: thread-safe. One lock; ``process``, ``transform`` and the key function
    run without it; ``known_objects`` is read while holding it (it must not call back).

    Invariants: entries are never empty; ``_queue`` order is arrival order.
    """

    def __init__(
        self,
        *,
        known_objects: KeyListerGetter[_T],
        key_func: KeyFunc[_T] | None = None,
        transform: TransformFunc[_T] | None = None,
    ) -> None:
        """Create an empty FIFO.

        Args:
            known_objects: the indexer the popped deltas are applied to (the informer's);
                needed to find objects a relist no longer returns.
            key_func: default ``meta_namespace_key``; must accept tombstones.
            transform: applied once to every incoming object.
        """
        super().__init__(key_func=key_func, known_objects=known_objects, transform=transform)
        self._known: KeyListerGetter[_T] = known_objects
        self._queue: deque[_Entry[_T]] = deque()  # guarded by _cond

    def add(self, obj: _T) -> None:
        """Queue an ``ADDED`` delta."""
        self._append(DeltaType.ADDED, self._incoming(obj))

    def update(self, obj: _T) -> None:
        """Queue an ``UPDATED`` delta."""
        self._append(DeltaType.UPDATED, self._incoming(obj))

    def delete(self, obj: _T | DeletedFinalStateUnknown[_T]) -> None:
        """Queue a ``DELETED`` delta (never dropped)."""
        self._append(DeltaType.DELETED, self._incoming_deletion(obj))

    def replace(self, objects: Iterable[_T], resource_version: str) -> None:
        """Queue a (re)list as one entry: tombstones for vanished keys, then the list.

        Args:
            objects: the listed objects, in server order.
            resource_version: the list's resourceVersion (unused; kept for the Queue contract).
        """
        keyed = self._incoming_keyed(objects)
        listed = {key for key, _ in keyed}
        keys: list[ObjectKey] = []
        deltas: list[Delta[_T]] = []
        missing: list[ObjectKey] = []
        with self._cond:
            pending = self._pending_locked()
            for key, newest in pending.items():
                if key in listed or newest.type is DeltaType.DELETED:
                    continue
                keys.append(key)
                deltas.append(_tombstone(key, unwrap(newest.obj)))
            for key in self._known.list_keys():
                if key in listed or key in pending:
                    continue
                last = self._known.get_by_key(key)
                if last is None:
                    missing.append(key)
                keys.append(key)
                deltas.append(_tombstone(key, last))
            for key, obj in keyed:
                keys.append(key)
                deltas.append(Delta(DeltaType.REPLACED, obj))
            if deltas:
                self._queue.append((tuple(keys), tuple(deltas)))
            if not self._populated:
                self._populated = True
                self._initial_population_count = len(self._queue)
            self._cond.notify_all()
        for key in missing:
            _log.warning("fifo_known_object_missing", key=key, fifo="real_fifo")

    def resync(self) -> None:
        """Queue one entry of ``RESYNC`` deltas for every known key with nothing pending."""
        keys: list[ObjectKey] = []
        deltas: list[Delta[_T]] = []
        with self._cond:
            pending = self._pending_locked()
            for key in self._known.list_keys():
                if key in pending:
                    continue
                obj = self._known.get_by_key(key)
                if obj is not None:
                    keys.append(key)
                    deltas.append(Delta(DeltaType.RESYNC, obj))
            if deltas:
                self._queue.append((tuple(keys), tuple(deltas)))
                self._cond.notify_all()

    def __len__(self) -> int:
        """Return the number of queued entries (pending pops)."""
        with self._cond:
            return len(self._queue)

    # ---- internals -----------------------------------------------------------------------

    def _append(self, delta_type: DeltaType, obj: _T | DeletedFinalStateUnknown[_T]) -> None:
        key = self._key_func(obj)
        with self._cond:
            self._populated = True
            self._queue.append(((key,), (Delta(delta_type, obj),)))
            self._cond.notify_all()

    def _pending_locked(self) -> dict[ObjectKey, Delta[_T]]:
        """The newest not yet applied delta per key: the in-flight entry, then the queue."""
        pending = dict(self._in_flight)
        for keys, deltas in self._queue:
            pending.update(zip(keys, deltas, strict=True))
        return pending

    def _has_entries_locked(self) -> bool:
        return bool(self._queue)

    def _take_locked(self) -> tuple[tuple[Delta[_T], ...], dict[ObjectKey, Delta[_T]]]:
        keys, deltas = self._queue.popleft()
        return deltas, dict(zip(keys, deltas, strict=True))


def _tombstone(key: ObjectKey, last: _T | None) -> Delta[_T]:
    return Delta(DeltaType.DELETED, DeletedFinalStateUnknown(key, last))
