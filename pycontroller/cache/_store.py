"""Store and Indexer interfaces (≙ tools/cache/store.go, index.go).

Data flow: the informer is the only *writer* of its :class:`Indexer` (it applies the deltas it
pops from the FIFO); handlers, reconcilers and listers only see the read side,
:class:`ReadOnlyIndexer`. The FIFOs read the informer's indexer through the narrow
:class:`KeyListerGetter` to compute tombstones and resyncs.

Objects returned by any read method are the stored instances, shared by every reader: treat
them as immutable (the mutation detector catches violations in tests).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Protocol, TypeVar

from pycontroller.cache._index import IndexFunc
from pycontroller.cache._keys import DeletedFinalStateUnknown, ObjectKey

__all__ = ["Indexer", "KeyFunc", "KeyListerGetter", "ReadOnlyIndexer", "Store"]

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)
_T_contra = TypeVar("_T_contra", contravariant=True)


class KeyFunc(Protocol[_T_contra]):
    """Computes the key of an object or of a tombstone (see ``meta_namespace_key``)."""

    def __call__(self, obj: _T_contra | DeletedFinalStateUnknown[_T_contra], /) -> ObjectKey:
        """Return the key of ``obj``; raise ``ValueError``/``TypeError`` if it has none."""
        ...


class KeyListerGetter(Protocol[_T_co]):
    """The part of a store a FIFO needs to know which objects exist (≙ ``KeyListerGetter``)."""

    def list_keys(self) -> builtins.list[ObjectKey]:
        """Return a snapshot of every key, in no particular order."""
        ...

    def get_by_key(self, key: str) -> _T_co | None:
        """Return the object stored under ``key``, or ``None``."""
        ...


class ReadOnlyIndexer(KeyListerGetter[_T], Protocol[_T]):
    """The read side of an indexed store: what handlers, reconcilers and listers get.

    Thread-safety: implementations are thread-safe.
    """

    def get(self, obj: _T | DeletedFinalStateUnknown[_T]) -> _T | None:
        """Return the stored object with the same key as ``obj``, or ``None``."""
        ...

    def list(self) -> builtins.list[_T]:
        """Return a snapshot of every object, in no particular order."""
        ...

    def __len__(self) -> int:
        """Return the number of stored objects."""
        ...

    def by_index(self, index_name: str, value: str) -> builtins.list[_T]:
        """Return the objects indexed under ``value`` (raises ``IndexNotFoundError``)."""
        ...

    def index(self, index_name: str, obj: _T) -> builtins.list[_T]:
        """Return the objects sharing any index value with ``obj``, each once."""
        ...

    def index_keys(self, index_name: str, value: str) -> builtins.list[ObjectKey]:
        """Return the sorted keys indexed under ``value`` (raises ``IndexNotFoundError``)."""
        ...

    def list_index_func_values(self, index_name: str) -> builtins.list[str]:
        """Return every value present in the index (raises ``IndexNotFoundError``)."""
        ...

    def get_indexers(self) -> Mapping[str, IndexFunc[_T]]:
        """Return a read-only snapshot of the registered index functions."""
        ...


class Store(KeyListerGetter[_T], Protocol[_T]):
    """A keyed object store (≙ ``cache.Store`` without ``Resync``).

    ``add`` and ``update`` are the same operation (overwrite); both, and ``delete``, return the
    object previously stored under the key, so a writer learns add-vs-update in one call.

    Thread-safety: implementations are thread-safe.
    """

    def add(self, obj: _T) -> _T | None:
        """Store ``obj`` under its key; return the object it replaced, or ``None``."""
        ...

    def update(self, obj: _T) -> _T | None:
        """Same as :meth:`add`."""
        ...

    def delete(self, obj: _T | DeletedFinalStateUnknown[_T]) -> _T | None:
        """Remove the object with ``obj``'s key; return it, or ``None`` if absent."""
        ...

    def replace(self, objects: Mapping[ObjectKey, _T]) -> None:
        """Replace the whole content with ``objects`` (key → object) in one step."""
        ...

    def get(self, obj: _T | DeletedFinalStateUnknown[_T]) -> _T | None:
        """Return the stored object with the same key as ``obj``, or ``None``."""
        ...

    def list(self) -> builtins.list[_T]:
        """Return a snapshot of every object, in no particular order."""
        ...

    def __len__(self) -> int:
        """Return the number of stored objects."""
        ...


class Indexer(Store[_T], ReadOnlyIndexer[_T], Protocol[_T]):
    """A :class:`Store` with secondary indexes: the writer side the informer holds."""

    def add_indexers(self, indexers: Mapping[str, IndexFunc[_T]]) -> None:
        """Register more indexes; existing objects are indexed at once.

        Raises:
            ValueError: a name is already registered (nothing is added then).
        """
        ...
