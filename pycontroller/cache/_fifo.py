"""What both FIFOs between reflector and informer share (≙ tools/cache/fifo.go, delta_fifo.go).

Data flow: the Reflector calls ``add``/``update``/``delete`` per watch event, streams each
(re)list through ``RealFIFO.start_relist`` (or hands it whole to ``replace``), ``resync`` per
resync tick; the informer's single processing loop calls
``pop(process)``, where ``process`` applies the deltas to the informer's indexer and fans them
out to the (buffered) handlers. Both FIFOs read that indexer as ``known_objects`` to build
tombstones for objects a relist no longer returns.

Processing runs **outside** the FIFO lock (client-go's DeltaFIFO holds it, which lets slow
handlers block the reflector, kubernetes#103789). To keep client-go's results anyway, a FIFO
remembers the entry being processed ("in flight") and treats it as still queued when a
concurrent ``replace``/``resync``/``delete`` decides what the indexer will contain, and pops
are serialised: a second ``pop`` waits until the first one's ``process`` returned.
"""

from __future__ import annotations

import builtins
import enum
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, cast, final

import structlog

from pycontroller._util._logging import exception_fields
from pycontroller.cache._keys import DeletedFinalStateUnknown, ObjectKey, meta_namespace_key
from pycontroller.cache._store import KeyFunc, KeyListerGetter
from pycontroller.client._lazy import leave_gc
from pycontroller.errors import ShutDownError

__all__ = ["Delta", "DeltaType", "ProcessFunc", "Queue", "TransformFunc"]

_log = structlog.get_logger(__name__)
_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_T_contra = TypeVar("_T_contra", contravariant=True)


class DeltaType(enum.StrEnum):
    """What happened to an object (≙ ``cache.DeltaType``)."""

    ADDED = "Added"
    """A watch ADDED event."""
    UPDATED = "Updated"
    """A watch MODIFIED event."""
    DELETED = "Deleted"
    """A watch DELETED event, or a tombstone for an object a relist no longer returned."""
    REPLACED = "Replaced"
    """An object returned by a (re)list."""
    RESYNC = "Sync"
    """A periodic resync replaying the cached object."""


@final
@dataclass(frozen=True)  # hand-slotted for the same Python 3.11 reason as the tombstone
class Delta(Generic[_T_co]):
    """One change to one object.

    ``obj`` is the object's new state; for ``DELETED`` it is the last state (as sent by the
    server) or a :class:`DeletedFinalStateUnknown` tombstone.

    Thread-safety: immutable; safe to share.

    Invariants: ``obj`` is a tombstone only if ``type`` is ``DELETED``.

    Attributes:
        type: what happened.
        obj: the object (or tombstone).
    """

    __slots__ = ("obj", "type")

    type: DeltaType
    obj: _T_co | DeletedFinalStateUnknown[_T_co]

    def __reduce__(self) -> tuple[builtins.type[Delta[_T_co]], tuple[DeltaType, object]]:
        return (type(self), (self.type, self.obj))  # copy/pickle despite frozen hand-made slots


class ProcessFunc(Protocol[_T_contra]):
    """Consumes one popped entry: the deltas to apply, oldest first.

    ``is_in_initial_list`` is true while the FIFO has not synced, i.e. for the entries that
    came from the first list. The function must not call ``pop`` on the same FIFO.
    """

    def __call__(self, deltas: Sequence[Delta[_T_contra]], is_in_initial_list: bool) -> None:
        """Apply ``deltas``; an exception propagates out of ``pop`` (the entry is consumed)."""
        ...


class TransformFunc(Protocol[_T]):
    """Rewrites an incoming object once, before it is queued (e.g. drops managedFields).

    It may mutate and return its argument. It never sees tombstones or resync (``RESYNC``)
    objects, which already went through it.
    """

    def __call__(self, obj: _T, /) -> _T:
        """Return the object to queue."""
        ...


class Queue(Protocol[_T]):
    """The FIFO contract the Reflector writes to and the informer pops from.

    Implemented by :class:`DeltaFIFO` (per-key coalescing) and :class:`RealFIFO` (in order).

    Thread-safety: implementations are thread-safe; pops are serialised.
    """

    def add(self, obj: _T) -> None:
        """Queue a watch ADDED event."""
        ...

    def update(self, obj: _T) -> None:
        """Queue a watch MODIFIED event."""
        ...

    def delete(self, obj: _T | DeletedFinalStateUnknown[_T]) -> None:
        """Queue a watch DELETED event (``obj`` is the object's last state)."""
        ...

    def replace(self, objects: Iterable[_T], resource_version: str) -> None:
        """Queue a (re)list result plus tombstones for known objects it no longer contains."""
        ...

    def resync(self) -> None:
        """Queue ``RESYNC`` deltas replaying every known object that has nothing queued."""
        ...

    def pop(self, process: ProcessFunc[_T]) -> tuple[Delta[_T], ...]:
        """Block for the next entry, run ``process`` on it, return its deltas.

        Raises:
            ShutDownError: the FIFO is closed and empty.
        """
        ...

    def close(self) -> None:
        """Close the FIFO: wake every blocked ``pop``; pops drain what is left, then raise."""
        ...

    def is_closed(self) -> bool:
        """Return whether :meth:`close` was called."""
        ...

    def has_synced(self) -> bool:
        """Return whether everything from the first ``replace`` has been processed."""
        ...

    def __len__(self) -> int:
        """Return the number of pending pops."""
        ...


def unwrap(obj: _T | DeletedFinalStateUnknown[_T]) -> _T | None:
    """Return ``obj``, or the last known state a tombstone holds."""
    if isinstance(obj, DeletedFinalStateUnknown):
        return cast("_T | None", obj.obj)
    return obj


class _FIFOBase(Generic[_T]):
    """Closing, popping, sync tracking and in-flight bookkeeping shared by both FIFOs.

    Thread-safety: every field below is guarded by ``_cond``; ``transform`` and the key
    function (user code) run without it. ``known_objects`` is read *under* ``_cond`` (lock
    order: FIFO → indexer, the only nesting; the indexer must never call into the FIFO).
    """

    def __init__(
        self,
        *,
        key_func: KeyFunc[_T] | None,
        known_objects: KeyListerGetter[_T] | None,
        transform: TransformFunc[_T] | None,
    ) -> None:
        self._key_func: KeyFunc[_T] = (
            key_func if key_func is not None else cast("KeyFunc[_T]", meta_namespace_key)
        )
        self._known_objects = known_objects
        self._transform = transform
        self._cond = threading.Condition(threading.Lock())
        self._closed = False  # guarded by _cond
        self._populated = False  # guarded by _cond; any add/update/delete/replace happened
        # guarded by _cond; entries of the first complete list not yet processed
        self._initial_population_count = 0
        # guarded by _cond; newest delta per key of the entries being processed (empty if none).
        # invariant: _in_flight non-empty ⇒ _processing_thread is not None
        self._in_flight: dict[ObjectKey, Delta[_T]] = {}
        self._processing_thread: int | None = None  # guarded by _cond
        self._in_flight_entries = 0  # guarded by _cond; entries taken by the running pop
        self._waiting = 0  # guarded by _cond; poppers blocked in wait()

    # ---- subclass hooks (called with _cond held) ------------------------------------------

    def _has_entries_locked(self) -> bool:
        raise NotImplementedError

    def _take_locked(self, in_flight: dict[ObjectKey, Delta[_T]]) -> tuple[Delta[_T], ...]:
        """Remove the head entry and return its deltas; record its newest delta per key in
        ``in_flight`` (over what an earlier entry recorded there)."""
        raise NotImplementedError

    def _head_size_locked(self) -> int:
        """The number of deltas of the head entry (there is one)."""
        raise NotImplementedError

    # ---- shared public behaviour ---------------------------------------------------------

    def pop(self, process: ProcessFunc[_T]) -> tuple[Delta[_T], ...]:
        """Block until an entry is available, run ``process`` on it, return its deltas.

        ``process`` runs without the FIFO lock, so the reflector keeps queueing meanwhile.
        Pops are serialised: while one ``process`` runs, other poppers wait. An entry is
        consumed even if ``process`` raises (the exception propagates; nothing is requeued,
        as in client-go ≥ v0.33). ``has_synced`` turns true when the ``pop`` of the last
        entry of the first complete list returns (client-go reaches the same observable point
        by processing under its lock).

        Raises:
            ShutDownError: the FIFO is closed and nothing is left to pop.
            RuntimeError: called from inside ``process`` (it would deadlock).
        """
        return self._pop(process, 0)

    def _pop(self, process: ProcessFunc[_T], max_deltas: int) -> tuple[Delta[_T], ...]:
        """:meth:`pop`, taking further whole entries while the total stays at most
        ``max_deltas`` deltas (0: one entry; the head entry is taken whatever its size)
        and all of them are on the same side of the first list's end (so
        ``is_in_initial_list`` holds for every one of them)."""
        me = threading.get_ident()
        with self._cond:
            if self._processing_thread == me:
                raise RuntimeError("pop() called from inside its own process function")
            while self._processing_thread is not None or not self._has_entries_locked():
                if self._closed and not self._has_entries_locked():
                    raise ShutDownError("FIFO is closed")
                self._waiting += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting -= 1
            in_flight: dict[ObjectKey, Delta[_T]] = {}
            deltas = self._take_locked(in_flight)
            taken = 1
            initial = self._initial_population_count
            if (max_deltas and len(deltas) < max_deltas and self._has_entries_locked()
                    and initial != 1):
                gathered = list(deltas)
                while (self._has_entries_locked() and (initial == 0 or taken < initial)
                       and len(gathered) + self._head_size_locked() <= max_deltas):
                    gathered += self._take_locked(in_flight)  # the newest delta per key wins
                    taken += 1
                deltas = tuple(gathered)
            is_in_initial_list = not self._has_synced_locked()
            self._in_flight = in_flight
            self._in_flight_entries = taken
            self._processing_thread = me
        try:
            process(deltas, is_in_initial_list)
        finally:
            with self._cond:
                self._in_flight = {}
                self._in_flight_entries = 0
                self._processing_thread = None
                if self._initial_population_count > 0:
                    self._initial_population_count = max(
                        0, self._initial_population_count - taken)
                self._wake_locked()
        return deltas

    def _wake_locked(self) -> None:
        """Wake blocked poppers, if any (a notify nobody waits for still costs a call)."""
        if self._waiting:
            self._cond.notify_all()

    def close(self) -> None:
        """Close the FIFO and wake every blocked ``pop``; idempotent.

        Later pops drain what is still queued, then raise ``ShutDownError``.
        """
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def is_closed(self) -> bool:
        """Return whether :meth:`close` was called."""
        with self._cond:
            return self._closed

    def has_synced(self) -> bool:
        """Return whether the first ``replace`` has been fully popped and processed.

        Also true once any add/update/delete happened before the first ``replace``
        (client-go's rule; the Reflector always starts with ``replace``).
        """
        with self._cond:
            return self._has_synced_locked()

    # ---- helpers -------------------------------------------------------------------------

    def _has_synced_locked(self) -> bool:
        return self._populated and self._initial_population_count == 0

    def _incoming(self, obj: _T) -> _T:
        """Apply the transform to an object arriving from the reflector, then take the
        JSON containers of a decoded ``LazyObject`` out of the cyclic GC's sight
        (:func:`~pycontroller.client._lazy.leave_gc`; what the transform stored that is
        no JSON value stays tracked): cached objects are never mutated, so they can never
        be garbage of a cycle.

        A transform that raises does not lose the object: it is queued untransformed and
        the failure is logged (``transform_failed``) — the cache then mirrors the server.
        """
        if self._transform is not None:
            try:
                obj = self._transform(obj)
            except Exception as exc:
                _log.error("transform_failed", **exception_fields(exc))
        leave_gc(obj)
        return obj

    def _incoming_deletion(
        self, obj: _T | DeletedFinalStateUnknown[_T]
    ) -> _T | DeletedFinalStateUnknown[_T]:
        """Like :meth:`_incoming`, but tombstones pass untransformed."""
        if isinstance(obj, DeletedFinalStateUnknown):
            return obj
        return self._incoming(obj)

    def _incoming_keyed(self, objects: Iterable[_T]) -> list[tuple[ObjectKey, _T]]:
        """Transform and key every listed object (user code: call without the lock).

        An object without a key (the key function raises) cannot be cached: it is left
        out and logged (``fifo_object_dropped``); the rest of the list goes on.
        """
        return [keyed for obj in objects if (keyed := self._keyed(obj)) is not None]

    def _keyed(self, obj: _T) -> tuple[ObjectKey, _T] | None:
        """``obj`` transformed, with its key; ``None`` (logged as ``fifo_object_dropped``)
        if it has no key. User code: call without the lock."""
        new = self._incoming(obj)
        try:
            return self._key_func(new), new
        except Exception as exc:
            _log.error("fifo_object_dropped", reason="no key", **exception_fields(exc))
            return None
