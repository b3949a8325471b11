"""Secondary indexes over a store (≙ tools/cache/index.go, thread_safe_store.go).

An *index function* maps an object to the list of values it is indexed under (for example its
namespace, its node name, or the names of the secrets it mounts). The store keeps, per index,
``value -> set of keys`` so that ``by_index("namespace", "default")`` costs one lookup.

:class:`_Indices` is the private, non-thread-safe bookkeeping; :class:`ThreadSafeStore` owns
one and guards it with its lock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set
from types import MappingProxyType
from typing import Any, Final, Protocol, TypeVar, final

from pycontroller.cache._keys import ObjectKey
from pycontroller.errors import IndexNotFoundError

__all__ = ["NAMESPACE_INDEX", "IndexFunc", "meta_namespace_index_func"]

_T = TypeVar("_T")
_T_contra = TypeVar("_T_contra", contravariant=True)

NAMESPACE_INDEX: Final = "namespace"
"""Name of the conventional namespace index (values: the object's namespace, ``""`` if none)."""

IndexValues = tuple[str, ...]
"""The deduplicated values of one object under one index, in first-seen order."""


class IndexFunc(Protocol[_T_contra]):
    """Computes the values an object is indexed under.

    Index functions must be pure and fast: they run on every write, must not call into the
    store, and must not mutate the object. If one raises (or returns something other than
    strings) on a write to a :class:`ThreadSafeStore`, the object is still stored but left
    out of that one index; the failure is logged (``index_func_failed``) and counted
    (``ThreadSafeStore.index_errors``). client-go panics instead.
    """

    def __call__(self, obj: _T_contra, /) -> Iterable[str]:
        """Return the index values of ``obj`` (duplicates are ignored; may be empty)."""
        ...


def meta_namespace_index_func(obj: Mapping[str, Any]) -> list[str]:
    """Index an object by its namespace (``""`` for cluster-scoped objects).

    Args:
        obj: a Kubernetes object as a mapping.

    Returns:
        A one-element list holding the namespace.

    Raises:
        TypeError: ``obj`` has no ``metadata`` mapping.
    """
    # dict.get for decoded objects: a LazyObject never keeps a scalar or metadata raw.
    meta = dict.get(obj, "metadata") if isinstance(obj, dict) else obj.get("metadata")
    if not isinstance(meta, Mapping):
        raise TypeError("cannot index by namespace: object has no metadata mapping")
    namespace = dict.get(meta, "namespace") if isinstance(meta, dict) else meta.get("namespace")
    return [namespace or ""]


def compute_index_values(
    indexers: Mapping[str, IndexFunc[_T]], obj: _T,
    on_error: Callable[[str, Exception], None] | None = None,
) -> dict[str, IndexValues]:
    """Run every index function on ``obj`` (user code: call without holding a lock).

    With ``on_error``, a failing index function (one that raises or returns bad values) is
    reported as ``on_error(index_name, exc)`` and the object gets no value in that index
    only; without it, the exception propagates.

    Raises:
        TypeError: an index function returned a ``str`` or a non-string value.
        Exception: whatever an index function raised.
    """
    result: dict[str, IndexValues] = {}
    for name, func in indexers.items():
        if on_error is None:
            result[name] = _values_of(name, func, obj)
            continue
        try:
            result[name] = _values_of(name, func, obj)
        except Exception as exc:
            on_error(name, exc)
            result[name] = ()
    return result


def _values_of(name: str, func: IndexFunc[_T], obj: _T) -> IndexValues:
    """Run one index function and check what it returned."""
    raw = func(obj)
    if type(raw) is list and len(raw) == 1 and type(raw[0]) is str:
        return (raw[0],)  # the usual answer (the namespace index's), checked at once
    if isinstance(raw, str):
        raise TypeError(f"index function {name!r} returned the str {raw!r}; return a list of str")
    values = tuple(dict.fromkeys(raw))
    for value in values:
        if not isinstance(value, str):
            raise TypeError(
                f"index function {name!r} returned a {type(value).__name__}, not a str"
            )
    return values


@final
class _Indices:
    """Per-index ``value -> keys`` maps plus each key's current values.

    Thread-safety: not thread-safe; the owning store guards every call with its lock.

    Invariants:
        - ``key in _keys_by_value[i][v]`` ⇔ ``v in _values_by_key[i][key]``.
        - no value maps to an empty key set (emptied values are deleted, kubernetes#84959).
        - ``_keys_by_value``, ``_values_by_key`` and ``indexers`` have the same index names.
    """

    __slots__ = ("_keys_by_value", "_values_by_key", "indexers")

    def __init__(self, indexers: Mapping[str, IndexFunc[Any]]) -> None:
        # Replaced (never mutated) on add_indexers, so a writer can compare it by identity to
        # learn whether the index values it computed without the lock are still complete.
        self.indexers: Mapping[str, IndexFunc[Any]] = MappingProxyType(dict(indexers))
        self._keys_by_value: dict[str, dict[str, set[ObjectKey]]] = {n: {} for n in indexers}
        # Stored rather than recomputed from the old object: removal stays correct even if a
        # caller mutated a cached object (which client-go's recomputation gets wrong).
        self._values_by_key: dict[str, dict[ObjectKey, IndexValues]] = {n: {} for n in indexers}

    def set_values(self, key: ObjectKey, values: Mapping[str, IndexValues]) -> None:
        """Index ``key`` under ``values`` (one entry per index name), replacing its old values."""
        for name, new in values.items():
            by_key = self._values_by_key[name]
            old = by_key.get(key, ())
            if old == new:
                continue
            by_value = self._keys_by_value[name]
            for value in old:
                if value not in new:
                    self._discard(by_value, value, key)
            for value in new:
                if value not in old:
                    by_value.setdefault(value, set()).add(key)
            if new:
                by_key[key] = new
            else:
                by_key.pop(key, None)

    def remove(self, key: ObjectKey) -> None:
        """Drop ``key`` from every index."""
        for name, by_key in self._values_by_key.items():
            old = by_key.pop(key, ())
            by_value = self._keys_by_value[name]
            for value in old:
                self._discard(by_value, value, key)

    def clear(self) -> None:
        """Empty every index (keeping the index functions)."""
        for name in self.indexers:
            self._keys_by_value[name] = {}
            self._values_by_key[name] = {}

    def add_indexers(self, new: Mapping[str, IndexFunc[Any]]) -> None:
        """Register new, still empty indexes. The caller indexes existing items afterwards.

        Raises:
            ValueError: a name is already registered (nothing is added then).
        """
        clash = sorted(set(new) & set(self.indexers))
        if clash:
            raise ValueError(f"indexer conflict: index(es) {clash} already exist")
        merged = dict(self.indexers)
        merged.update(new)
        self.indexers = MappingProxyType(merged)
        for name in new:
            self._keys_by_value[name] = {}
            self._values_by_key[name] = {}

    def keys(self, name: str, value: str) -> Set[ObjectKey]:
        """Return the live key set of ``value`` in index ``name`` (copy it before unlocking)."""
        return self._index(name).get(value, _EMPTY)

    def values(self, name: str) -> list[str]:
        """Return every value currently present in index ``name``."""
        return list(self._index(name))

    def require(self, name: str) -> IndexFunc[Any]:
        """Return the index function ``name``.

        Raises:
            IndexNotFoundError: no such index.
        """
        try:
            return self.indexers[name]
        except KeyError:
            raise IndexNotFoundError(f"index with name {name!r} does not exist") from None

    def _index(self, name: str) -> dict[str, set[ObjectKey]]:
        try:
            return self._keys_by_value[name]
        except KeyError:
            raise IndexNotFoundError(f"index with name {name!r} does not exist") from None

    @staticmethod
    def _discard(by_value: dict[str, set[ObjectKey]], value: str, key: ObjectKey) -> None:
        keys = by_value.get(value)
        if keys is None:
            return
        keys.discard(key)
        if not keys:
            del by_value[value]


_EMPTY: Final[frozenset[ObjectKey]] = frozenset()
