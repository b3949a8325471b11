"""The thread-safe indexed object store (≙ tools/cache/thread_safe_store.go, store.go).

Data flow: the informer pops deltas from its FIFO and applies them here (the only writer);
listers, handlers and reconcilers read from here through :class:`ReadOnlyIndexer` views, and
the FIFO reads keys and last-known states from here to build tombstones and resyncs.
"""

from __future__ import annotations

import builtins
import threading
from collections.abc import Callable, Mapping
from typing import Generic, TypeVar, cast, final

import structlog

from pycontroller._util._logging import exception_fields
from pycontroller.cache._index import IndexFunc, IndexValues, _Indices, compute_index_values
from pycontroller.cache._keys import DeletedFinalStateUnknown, ObjectKey, meta_namespace_key
from pycontroller.cache._store import KeyFunc

__all__ = ["ThreadSafeStore"]

_log = structlog.get_logger(__name__)
_T = TypeVar("_T")


@final
class ThreadSafeStore(Generic[_T]):
    """An in-memory, indexed object store; implements :class:`Indexer`.

    Contract:
        - ``add`` ≡ ``update`` (overwrite by key); ``add``/``update``/``delete`` return the
          object previously stored under the key (``None`` if there was none).
        - ``replace`` swaps in a new content and rebuilds every index from scratch, in one
          step: readers see either the old or the new content, never a mix.
        - reads return snapshots (``list``, ``list_keys``, ``by_index``...) in no particular
          order, except ``index_keys`` (sorted). Objects are the stored instances: do not mutate.
        - an index value whose last key leaves is removed (no leak, kubernetes#84959).
        - an index function that fails on a write (``add``/``update``/``replace``) does not
          stop it: the object is stored and indexed everywhere except in that one index; the
          failure is logged (``index_func_failed``) and counted in :attr:`index_errors`.
          (client-go panics; losing the rest of a relist to one bad object is worse.)
          ``add_indexers`` still raises, to its caller, and adds nothing.
        - unknown index names raise ``IndexNotFoundError``, including in
          ``list_index_func_values`` (client-go returns an empty list there).

    Thread-safety: thread-safe. One lock guards items and indexes. Key and index functions
    (user code) run *without* the lock on every write path, except :meth:`add_indexers`, which
    computes the new indexes for existing items under the lock so no write can slip past it
    (a rare, setup-time call; index functions must be pure and never call into the store).

    Invariants:
        - every stored key is indexed under exactly the values its index functions returned
          for the stored object when it was written;
        - the set of index names only grows.
    """

    def __init__(
        self,
        *,
        key_func: KeyFunc[_T] | None = None,
        indexers: Mapping[str, IndexFunc[_T]] | None = None,
    ) -> None:
        """Create an empty store.

        Args:
            key_func: computes object keys; default ``meta_namespace_key`` (objects must then
                be mappings with ``metadata``).
            indexers: index name → index function.
        """
        self._key_func: KeyFunc[_T] = (
            key_func if key_func is not None else cast("KeyFunc[_T]", meta_namespace_key)
        )
        self._lock = threading.Lock()
        self._items: dict[ObjectKey, _T] = {}  # guarded by _lock
        # guarded by _lock; its ``indexers`` attribute is immutable and replaced atomically, so
        # writers may read it without the lock to compute index values outside the lock.
        self._indices = _Indices(indexers or {})
        self._index_errors = 0  # guarded by _lock

    @property
    def index_errors(self) -> int:
        """How many times an index function failed on a write (see the class contract)."""
        with self._lock:
            return self._index_errors

    # ---- writes --------------------------------------------------------------------------

    def add(self, obj: _T) -> _T | None:
        """Store ``obj`` under its key; return the object it replaced, or ``None``.

        Raises:
            ValueError, TypeError: the key function rejects ``obj``.
        """
        return self._put(self._key_func(obj), obj)

    def update(self, obj: _T) -> _T | None:
        """Same as :meth:`add`."""
        return self._put(self._key_func(obj), obj)

    def delete(self, obj: _T | DeletedFinalStateUnknown[_T]) -> _T | None:
        """Remove the object with ``obj``'s key (``obj`` may be a tombstone).

        Returns:
            The removed object, or ``None`` if nothing was stored under the key.
        """
        key = self._key_func(obj)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._indices.remove(key)
            return old

    def replace(self, objects: Mapping[ObjectKey, _T]) -> None:
        """Replace the whole content with ``objects`` and rebuild every index.

        Args:
            objects: key → object; the keys are trusted (not recomputed).
        """
        items = dict(objects)
        while True:
            indexers = self._indices.indexers
            failed: list[tuple[ObjectKey, str, Exception]] = []
            values = {key: compute_index_values(indexers, obj, _collect(key, failed))
                      for key, obj in items.items()}
            with self._lock:
                if self._indices.indexers is not indexers:
                    continue  # add_indexers ran meanwhile: recompute with the new set
                self._items = items
                self._indices.clear()
                for key, key_values in values.items():
                    self._indices.set_values(key, key_values)
                self._index_errors += len(failed)
            _report(failed)
            return

    def add_indexers(self, indexers: Mapping[str, IndexFunc[_T]]) -> None:
        """Register more indexes and index every stored object under them at once.

        Allowed at any time, also while an informer runs.

        Raises:
            ValueError: a name is already registered (nothing is added).
            Exception: a new index function raised (nothing is added).
        """
        with self._lock:
            clash = sorted(set(indexers) & set(self._indices.indexers))
            if clash:
                raise ValueError(f"indexer conflict: index(es) {clash} already exist")
            # User code under the lock, deliberately: see the class docstring.
            values = {
                key: compute_index_values(indexers, obj) for key, obj in self._items.items()
            }
            self._indices.add_indexers(indexers)
            for key, key_values in values.items():
                self._indices.set_values(key, key_values)

    # ---- reads ---------------------------------------------------------------------------

    def get(self, obj: _T | DeletedFinalStateUnknown[_T]) -> _T | None:
        """Return the stored object with the same key as ``obj``, or ``None``."""
        return self.get_by_key(self._key_func(obj))

    def get_by_key(self, key: str) -> _T | None:
        """Return the object stored under ``key``, or ``None``."""
        with self._lock:
            return self._items.get(ObjectKey(key))

    def list(self) -> builtins.list[_T]:
        """Return a snapshot of every object, in no particular order."""
        with self._lock:
            return list(self._items.values())

    def list_keys(self) -> builtins.list[ObjectKey]:
        """Return a snapshot of every key, in no particular order."""
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        """Return the number of stored objects."""
        with self._lock:
            return len(self._items)

    def by_index(self, index_name: str, value: str) -> builtins.list[_T]:
        """Return the objects indexed under ``value`` in ``index_name``.

        Raises:
            IndexNotFoundError: no index named ``index_name``.
        """
        with self._lock:
            return [self._items[key] for key in self._indices.keys(index_name, value)]

    def index(self, index_name: str, obj: _T) -> builtins.list[_T]:
        """Return every object that shares at least one ``index_name`` value with ``obj``.

        Each object appears once even if it matches several values.

        Raises:
            IndexNotFoundError: no index named ``index_name``.
            Exception: the index function raised.
        """
        func = self._indices.require(index_name)
        values: IndexValues = compute_index_values({index_name: func}, obj)[index_name]
        with self._lock:
            if len(values) == 1:
                keys = self._indices.keys(index_name, values[0])
            else:
                keys = set()
                for value in values:
                    keys |= self._indices.keys(index_name, value)
            return [self._items[key] for key in keys]

    def index_keys(self, index_name: str, value: str) -> builtins.list[ObjectKey]:
        """Return the sorted keys indexed under ``value`` in ``index_name``.

        Raises:
            IndexNotFoundError: no index named ``index_name``.
        """
        with self._lock:
            return sorted(self._indices.keys(index_name, value))

    def list_index_func_values(self, index_name: str) -> builtins.list[str]:
        """Return every value currently present in ``index_name``, in no particular order.

        Raises:
            IndexNotFoundError: no index named ``index_name``.
        """
        with self._lock:
            return self._indices.values(index_name)

    def get_indexers(self) -> Mapping[str, IndexFunc[_T]]:
        """Return a read-only snapshot of the registered index functions."""
        return self._indices.indexers

    # ---- internals -----------------------------------------------------------------------

    def _put(self, key: ObjectKey, obj: _T) -> _T | None:
        while True:
            indexers = self._indices.indexers
            failed: list[tuple[ObjectKey, str, Exception]] = []
            # user code: outside the lock
            values = compute_index_values(indexers, obj, _collect(key, failed))
            with self._lock:
                if self._indices.indexers is not indexers:
                    continue  # add_indexers ran meanwhile: recompute with the new set
                old = self._items.get(key)
                self._items[key] = obj
                self._indices.set_values(key, values)
                self._index_errors += len(failed)
            if failed:
                _report(failed)
            return old


def _collect(key: ObjectKey,
             failed: list[tuple[ObjectKey, str, Exception]]) -> Callable[[str, Exception], None]:
    return lambda index, exc: failed.append((key, index, exc))


def _report(failed: list[tuple[ObjectKey, str, Exception]]) -> None:
    for key, index, exc in failed:
        _log.error("index_func_failed", key=key, index=index, **exception_fields(exc))
