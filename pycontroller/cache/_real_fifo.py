"""The in-order FIFO shared informers use (≙ tools/cache/the_real_fifo.go, InOrderInformers).

Data flow: Reflector → ``RealFIFO`` → ``pop(process)`` → informer (indexer + handlers).
client-go switched shared informers from DeltaFIFO to this queue in v0.33 (GA in v0.36):
handlers see every event in arrival order, and a relist is applied as one unit.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Final, Generic, TypeVar, final

import structlog

from pycontroller.cache._fifo import (
    Delta,
    DeltaType,
    ProcessFunc,
    TransformFunc,
    _FIFOBase,
    unwrap,
)
from pycontroller.cache._keys import DeletedFinalStateUnknown, ObjectKey

if TYPE_CHECKING:
    from collections.abc import Iterable

    from pycontroller.cache._store import KeyFunc, KeyListerGetter

__all__ = ["RealFIFO", "StreamedRelist"]

_log = structlog.get_logger(__name__)

_T = TypeVar("_T")

RELIST_BATCH: Final = 256
"""Objects of a streamed relist queued per entry (one pop)."""

POP_BATCH: Final = 512
"""At most this many deltas per ``pop_batch`` (beyond one entry that is larger)."""

# One queue entry: the keys of its deltas and the deltas, in order, popped together.
_Entry = tuple[tuple[ObjectKey, ...], tuple[Delta[_T], ...]]


@final
class RealFIFO(_FIFOBase[_T], Generic[_T]):
    """A FIFO of deltas in arrival order, with atomic relists.

    Contract:
        - every ``add``/``update``/``delete`` is its own entry, popped in order (alone by
          ``pop``, with whole neighbours by ``pop_batch``); nothing is coalesced or dropped
          (a ``delete`` of an object the cache never had still pops, so the handler still
          gets ``on_delete``).
        - ``replace(list, rv)`` (a whole list at once) queues ONE entry: first a
          ``DELETED`` tombstone (``DeletedFinalStateUnknown``) for every key that is pending
          (queued or in flight, newest delta not a deletion) or known to ``known_objects``
          but not listed — holding the newest pending object, else the indexer's, i.e. the
          last known state — then a ``REPLACED`` delta per listed object in list order. One
          ``pop`` hands the whole entry to ``process`` (client-go's AtomicFIFO gives the
          same guarantee with a ``ReplacedAll`` delta).
        - ``start_relist()`` streams a list instead (what the Reflector uses, so a relist
          never holds the old cache and a second full copy at once): ``REPLACED`` entries
          of up to ``RELIST_BATCH`` objects as they arrive, then at ``finish`` ONE entry of
          the same tombstones as ``replace`` (keys pending or known but not listed). See
          :class:`StreamedRelist`; an abandoned relist queues no tombstones.
        - ``resync()`` queues ONE entry of ``RESYNC`` deltas: the indexer's object for each
          known key that has nothing pending.
        - the transform runs once per object given to ``add``/``update``/``delete``/
          ``replace``; never on ``RESYNC`` objects or tombstones.
        - ``has_synced`` turns true only after ``process`` returned for the last entry that
          was queued (or in flight) when the first ``replace`` or ``finish`` of a streamed
          relist returned; ``is_in_initial_list`` is true for those pops and for every pop
          before (the batches of a first streamed list, or of one that was abandoned).
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
        with self._cond:
            keys, deltas, missing = self._tombstones_locked(listed)
            for key, obj in keyed:
                keys.append(key)
                deltas.append(Delta(DeltaType.REPLACED, obj))
            if deltas:
                self._queue.append((tuple(keys), tuple(deltas)))
            self._list_done_locked()
        _log_missing(missing)

    def pop_batch(self, process: ProcessFunc[_T],
                  max_deltas: int = POP_BATCH) -> tuple[Delta[_T], ...]:
        """Like ``pop``, but hands ``process`` the deltas of several whole entries at once:
        the head entry (whatever its size), then further whole entries, in order, while
        the total stays at most ``max_deltas`` (client-go's ``PopBatch``; the informer
        uses it). Entries of the
        first list and entries after it never share a batch, so ``is_in_initial_list``
        holds for all of it; ``has_synced`` counts every entry taken.

        Unlike client-go's ``PopBatch``, a batch may hold several deltas of one key: they
        stay in arrival order, and a concurrent ``replace``/``resync`` sees the newest of
        them as in flight. The saving is per pop: one wake-up, one lock round and one call
        of ``process`` for a backlog instead of one per event.
        """
        return self._pop(process, max_deltas)

    def start_relist(self) -> StreamedRelist[_T]:
        """Begin a (re)list that is queued as it arrives (see :class:`StreamedRelist`)."""
        return StreamedRelist(self)

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
                self._wake_locked()

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
            self._wake_locked()

    def _tombstones_locked(
        self, listed: set[ObjectKey],
    ) -> tuple[list[ObjectKey], list[Delta[_T]], list[ObjectKey]]:
        """Tombstones for every key pending (newest delta not a deletion) or known but not
        ``listed``: (keys, deltas, known keys whose object was missing)."""
        keys: list[ObjectKey] = []
        deltas: list[Delta[_T]] = []
        missing: list[ObjectKey] = []
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
        return keys, deltas, missing

    def _list_done_locked(self) -> None:
        """A complete list is queued: the first one sets what ``has_synced`` waits for."""
        if not self._populated:
            self._populated = True
            self._initial_population_count = len(self._queue) + self._in_flight_entries
        self._wake_locked()

    def _queue_relisted(self, batch: dict[ObjectKey, _T]) -> None:
        """Queue one entry of ``REPLACED`` deltas (a streamed relist's batch)."""
        entry = (tuple(batch), tuple(Delta(DeltaType.REPLACED, obj) for obj in batch.values()))
        with self._cond:
            self._queue.append(entry)
            self._wake_locked()

    def _finish_relist(self, listed: set[ObjectKey]) -> None:
        with self._cond:
            keys, deltas, missing = self._tombstones_locked(listed)
            if deltas:
                self._queue.append((tuple(keys), tuple(deltas)))
            self._list_done_locked()
        _log_missing(missing)

    def _pending_locked(self) -> dict[ObjectKey, Delta[_T]]:
        """The newest not yet applied delta per key: the in-flight entry, then the queue."""
        pending = dict(self._in_flight)
        for keys, deltas in self._queue:
            pending.update(zip(keys, deltas, strict=True))
        return pending

    def _has_entries_locked(self) -> bool:
        return bool(self._queue)

    def _head_size_locked(self) -> int:
        return len(self._queue[0][1])

    def _take_locked(self, in_flight: dict[ObjectKey, Delta[_T]]) -> tuple[Delta[_T], ...]:
        keys, deltas = self._queue.popleft()
        if len(keys) == 1:  # a watch event
            in_flight[keys[0]] = deltas[0]
        else:
            in_flight.update(zip(keys, deltas, strict=True))
        return deltas


def _tombstone(key: ObjectKey, last: _T | None) -> Delta[_T]:
    return Delta(DeltaType.DELETED, DeletedFinalStateUnknown(key, last))


def _log_missing(missing: list[ObjectKey]) -> None:
    for key in missing:
        _log.warning("fifo_known_object_missing", key=key, fifo="real_fifo")


@final
class StreamedRelist(Generic[_T]):
    """One (re)list fed into a :class:`RealFIFO` object by object (``RealFIFO.start_relist``).

    The informer applies the listed objects while the list still arrives, replacing the
    cached objects in place, so memory holds the cache plus one batch — not the old cache
    and a complete second copy (client-go's Replace and kube-rs's store hold both).

    Contract:
        - ``add(obj)``: the transform runs and the key is computed at once (an object
          without a key is logged as ``fifo_object_dropped`` and left out); objects are
          queued in list order as entries of up to ``RELIST_BATCH`` ``REPLACED`` deltas
          (the informer turns them into ``on_add``, or ``on_update(old, new)`` for a key
          it had, also with an unchanged resourceVersion). A second ``add`` of a key not
          yet queued replaces the first in place.
        - ``remove(obj)``: ``obj``'s key is no longer part of the list (a ``DELETED``
          among the initial events of a WatchList): dropped if not yet queued; if queued,
          it gets its tombstone at ``finish``.
        - ``restart()``: the list starts over (an expired LIST continuation): the listed
          keys and the unqueued batch are forgotten; what was queued stays queued.
        - ``finish(rv)``: queues the rest, then ONE entry of ``DELETED`` tombstones
          (``DeletedFinalStateUnknown``, last known state) for every key pending or known
          to the indexer but not listed — so a key vanishes only after a complete list —
          and counts as the FIFO's first list for ``has_synced`` (see ``RealFIFO``).
          Call it once, and nothing after it.
        - abandoned (a broken stream, never finished): only real object versions from
          the server were queued; no tombstones, ``has_synced`` unchanged; the next
          (re)list completes the job.
        - Unlike ``replace`` (and client-go's AtomicFIFO), a streamed relist reaches the
          cache over several pops: readers may see some objects at the new list's state
          and others still at the old one until ``finish``'s entry is processed. No watch
          event is applied in between (the Reflector is the only producer, and it is busy
          listing).

    Thread-safety: not thread-safe itself: one producer (the Reflector's thread) calls
    it; the FIFO stays thread-safe. The transform and key function run without any lock.
    """

    def __init__(self, fifo: RealFIFO[_T]) -> None:
        self._fifo = fifo
        self._listed: set[ObjectKey] = set()
        self._batch: dict[ObjectKey, _T] = {}
        self._count = 0

    @property
    def count(self) -> int:
        """Objects added so far (for logs and metrics)."""
        return self._count

    def add(self, obj: _T) -> None:
        """A listed object (see the class contract)."""
        keyed = self._fifo._keyed(obj)
        if keyed is None:
            return
        key, new = keyed
        self._count += 1
        self._listed.add(key)
        self._batch[key] = new
        if len(self._batch) >= RELIST_BATCH:
            self._flush()

    def remove(self, obj: _T) -> None:
        """``obj``'s key left the list (see the class contract)."""
        try:
            key = self._fifo._key_func(obj)
        except Exception:
            return  # never listed: it had no key
        self._listed.discard(key)
        self._batch.pop(key, None)

    def restart(self) -> None:
        """The list starts over (see the class contract)."""
        self._listed.clear()
        self._batch = {}
        self._count = 0

    def finish(self, resource_version: str) -> None:
        """The list is complete at ``resource_version``: queue the rest and the tombstones."""
        self._flush()
        self._fifo._finish_relist(self._listed)

    def _flush(self) -> None:
        if self._batch:
            batch, self._batch = self._batch, {}
            self._fifo._queue_relisted(batch)
