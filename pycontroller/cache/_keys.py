"""Object keys and deletion tombstones (≙ tools/cache/store.go, object-names.go, delta_fifo.go).

Every object in a cache, FIFO or work queue is identified by its key: ``namespace/name`` for
namespaced objects, ``name`` for cluster-scoped ones. The UID is not part of the identity, so
a delete and re-create under the same name can surface as one update.

When a relist finds that an object vanished while the watch was down, the final state of the
object is unknown; the FIFO then delivers a :class:`DeletedFinalStateUnknown` tombstone instead
of the object. Every ``on_delete`` handler must accept one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, NewType, TypeVar, final

from pycontroller.client._lazy import LazyObject

__all__ = [
    "DeletedFinalStateUnknown",
    "ObjectKey",
    "meta_namespace_key",
    "split_meta_namespace_key",
]

ObjectKey = NewType("ObjectKey", str)
"""The string identity of an object in a store: ``namespace/name``, or ``name``."""

_T_co = TypeVar("_T_co", covariant=True)


# Slotted by hand, not with ``slots=True``: on Python 3.11 that makes ``Cls[T](...)`` raise
# TypeError (the generated frozen ``__setattr__`` refers to the pre-slots class).
@final
@dataclass(frozen=True)
class DeletedFinalStateUnknown(Generic[_T_co]):
    """A deletion noticed by a relist rather than by a watch event (a "tombstone").

    The object was deleted while the watch was disconnected, so its final state is unknown.
    ``obj`` is the last state this process knew (possibly stale), or ``None`` if even that
    was unavailable. Handlers receive this in ``on_delete`` in place of the object; use
    ``obj`` when it is not ``None`` and ``key`` otherwise.

    Thread-safety: immutable; safe to share.

    Invariants: ``key`` is the key under which the object was stored.

    Attributes:
        key: the key of the deleted object.
        obj: the last known state of the object, or ``None``.
    """

    __slots__ = ("key", "obj")

    key: ObjectKey
    obj: _T_co | None

    def __reduce__(
        self,
    ) -> tuple[type[DeletedFinalStateUnknown[_T_co]], tuple[ObjectKey, _T_co | None]]:
        return (type(self), (self.key, self.obj))  # copy/pickle despite frozen hand-made slots


# Exactly these types hold every scalar of ``metadata`` decoded in the dict itself (a
# LazyObject keeps only objects and arrays raw), so ``dict.get`` reads them as they are.
_DICTS: Final = frozenset({dict, LazyObject})


def meta_namespace_key(obj: Mapping[str, Any] | DeletedFinalStateUnknown[Any]) -> ObjectKey:
    """Return the store key of ``obj``: ``namespace/name``, or ``name`` when cluster-scoped.

    A :class:`DeletedFinalStateUnknown` yields its stored key, so the same function keys
    objects and tombstones (≙ ``DeletionHandlingMetaNamespaceKeyFunc``).

    Args:
        obj: a Kubernetes object as a mapping (decoded JSON), or a tombstone.

    Returns:
        The key.

    Raises:
        TypeError: ``obj`` is neither a mapping nor a tombstone, or its ``metadata`` is not a
            mapping.
        ValueError: ``obj`` has no ``metadata``, no non-empty string ``metadata.name``, or a
            non-string ``metadata.namespace``.
    """
    if type(obj) in _DICTS:  # the hot path: decoded JSON, read without Python-level calls
        meta = dict.get(obj, "metadata")  # type: ignore[call-overload]
        if type(meta) in _DICTS:
            name, namespace = dict.get(meta, "name"), dict.get(meta, "namespace")
            if type(name) is str and name and (namespace is None or type(namespace) is str):
                return ObjectKey(f"{namespace}/{name}" if namespace else name)
    if isinstance(obj, DeletedFinalStateUnknown):
        return obj.key
    if not isinstance(obj, Mapping):
        raise TypeError(
            f"cannot compute a key: expected a mapping, got {type(obj).__name__}"
        )
    meta = obj.get("metadata")
    if meta is None:
        raise ValueError("cannot compute a key: object has no metadata")
    if not isinstance(meta, Mapping):
        raise TypeError(
            f"cannot compute a key: metadata is {type(meta).__name__}, not a mapping"
        )
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"cannot compute a key: metadata.name is missing or empty ({name!r})")
    namespace = meta.get("namespace") or ""
    if not isinstance(namespace, str):
        raise ValueError(f"cannot compute a key: metadata.namespace is not a str ({namespace!r})")
    return ObjectKey(f"{namespace}/{name}" if namespace else name)


def split_meta_namespace_key(key: str) -> tuple[str, str]:
    """Split a key made by :func:`meta_namespace_key` into ``(namespace, name)``.

    ``"name"`` gives ``("", "name")``; ``"ns/name"`` gives ``("ns", "name")``.

    Args:
        key: the key.

    Returns:
        The namespace (``""`` for cluster-scoped objects) and the name.

    Raises:
        ValueError: the key has more than one ``/`` or an empty name. (client-go accepts an
            empty name; a key with one can only come from a bug, so it is rejected here.)
    """
    parts = key.split("/")
    if len(parts) == 1:
        namespace, name = "", parts[0]
    elif len(parts) == 2:
        namespace, name = parts
    else:
        raise ValueError(f"unexpected key format: {key!r} (want 'name' or 'namespace/name')")
    if not name:
        raise ValueError(f"unexpected key format: {key!r} has an empty name")
    return namespace, name
