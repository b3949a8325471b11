"""Read-only views of an informer's cache (≙ tools/cache/listers.go, the generated listers).

Data flow: reconcilers and handlers read the current state through a :class:`Lister`; it wraps
the informer's indexer but exposes no write method, so only the informer writes the cache
(the kube-rs ``Writer``/``Store`` split).
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Any, Generic, TypeVar, final

from pycontroller.cache._index import NAMESPACE_INDEX
from pycontroller.cache._keys import ObjectKey
from pycontroller.cache._store import ReadOnlyIndexer
from pycontroller.errors import IndexNotFoundError

__all__ = ["Lister"]

_M = TypeVar("_M", bound=Mapping[str, Any])


@final
class Lister(Generic[_M]):
    """A read-only view of an indexed cache of Kubernetes objects.

    Contract: every method reads the cache as it is at the call; results are snapshots in no
    particular order. The returned objects are the cached instances, shared with every other
    reader: never mutate them (deep-copy first). The view does not own the cache and exposes no
    way to write it.

    Thread-safety: thread-safe (delegates to the thread-safe indexer).

    Invariants: holds no state besides the indexer reference.
    """

    __slots__ = ("_indexer",)

    def __init__(self, indexer: ReadOnlyIndexer[_M]) -> None:
        """Wrap ``indexer`` (typically a ``ThreadSafeStore``) in a read-only view."""
        self._indexer = indexer

    def get(self, name: str, *, namespace: str = "") -> _M | None:
        """Return the object ``namespace/name`` (or cluster-scoped ``name``), or ``None``."""
        key = f"{namespace}/{name}" if namespace else name
        return self._indexer.get_by_key(ObjectKey(key))

    def get_by_key(self, key: str) -> _M | None:
        """Return the object stored under ``key`` (as made by ``meta_namespace_key``), or None."""
        return self._indexer.get_by_key(key)

    def list(
        self,
        *,
        namespace: str | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> builtins.list[_M]:
        """Return the cached objects, optionally filtered.

        Args:
            namespace: only objects in this namespace (``""``: cluster-scoped objects). Uses
                the ``namespace`` index when the cache has one, else scans.
            selector: only objects whose labels contain every ``key: value`` pair (an
                equality-based label selector). ``None`` or empty selects everything.

        Returns:
            The matching objects.
        """
        if namespace is None:
            objects = self._indexer.list()
        else:
            try:
                objects = self._indexer.by_index(NAMESPACE_INDEX, namespace)
            except IndexNotFoundError:
                objects = [obj for obj in self._indexer.list() if _namespace(obj) == namespace]
        if not selector:
            return objects
        return [obj for obj in objects if _labels_match(obj, selector)]

    def by_index(self, index_name: str, value: str) -> builtins.list[_M]:
        """Return the objects indexed under ``value`` in ``index_name``.

        Raises:
            IndexNotFoundError: no index named ``index_name``.
        """
        return self._indexer.by_index(index_name, value)

    def __len__(self) -> int:
        """Return the number of cached objects."""
        return len(self._indexer)


def _namespace(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return ""
    namespace = meta.get("namespace") or ""
    return namespace if isinstance(namespace, str) else ""


def _labels_match(obj: Mapping[str, Any], selector: Mapping[str, str]) -> bool:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    if not isinstance(labels, Mapping):
        return False
    return all(labels.get(key) == value for key, value in selector.items())
