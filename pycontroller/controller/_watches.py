"""Declared watches: which events of which resource enqueue which keys.

≙ controller-runtime's ``builder.Owns`` / ``builder.Watches`` with
``handler.EnqueueRequestForOwner`` and ``handler.EnqueueRequestsFromMapFunc``. Data flow:
informer → :class:`EventSource` (predicates, then the key mapping) → the controller's work
queue (keys only).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, final

import structlog

from pycontroller.cache._keys import DeletedFinalStateUnknown, meta_namespace_key
from pycontroller.client._resource import Resource
from pycontroller.controller._predicates import Predicate, PredicateLike, as_predicate

_log = structlog.get_logger(__name__)

Obj = Mapping[str, Any]
MapFunc = Callable[[Obj], Iterable[str]]


@final
@dataclass(frozen=True, slots=True)
class Watch:
    """A secondary resource whose events enqueue the keys ``map_to(obj)`` returns.

    ``map_to`` is a function ``obj -> iterable of keys`` or a method of the controller
    (``def users_of(self, obj)``, referenced in the class body), which is bound to the
    instance. On an update both the old and the new object are mapped. ``predicates``
    filter the events first. ``namespace``/``label_selector``/``field_selector`` scope the
    informer (``None``: the controller's namespace, all objects); the same scope anywhere
    in the process means the same shared informer.

    Thread-safety: immutable.
    """

    resource: Resource
    map_to: Callable[..., Iterable[str]]
    predicates: tuple[PredicateLike, ...] = ()
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None


@final
@dataclass(frozen=True, slots=True)
class Owns:
    """An owned child resource with options: ``owns = (Owns(DEPLOYMENTS, predicates=...),)``.

    A bare ``Resource`` in ``owns`` is ``Owns(resource)``. Events pass ``predicates``, then
    map to the key of the child's controller owner (see ``Controller.owns``).
    ``namespace`` (``None``: the controller's) and ``label_selector`` scope the informer.

    Thread-safety: immutable.
    """

    resource: Resource
    predicates: tuple[PredicateLike, ...] = ()
    namespace: str | None = None
    label_selector: str | None = None


def obj_of(obj: Obj | DeletedFinalStateUnknown[Obj]) -> Obj | None:
    """The object itself, or a tombstone's last known object (maybe None)."""
    if isinstance(obj, DeletedFinalStateUnknown):
        return obj.obj
    return obj


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0] if "/" in api_version else ""


def owner_key(owner: Resource, obj: Obj | None) -> str | None:
    """The key of ``obj``'s controller owner if that owner is of kind ``owner``, else None.

    Follows the ownerReference with ``controller: true``; the group must match (the
    version may differ, as in controller-runtime) and the kind too. A cluster-scoped owner
    has key ``name``; a namespaced owner lives in the child's namespace.
    """
    if obj is None:
        return None
    meta = obj.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    for ref in meta.get("ownerReferences") or ():
        if not isinstance(ref, Mapping) or not ref.get("controller"):
            continue
        if ref.get("kind") != owner.kind or _group(str(ref.get("apiVersion", ""))) != owner.group:
            return None
        name = ref.get("name")
        if not isinstance(name, str) or not name:
            return None
        namespace = meta.get("namespace") or ""
        return f"{namespace}/{name}" if owner.namespaced and namespace else name
    return None


@final
class EventSource:
    """The handler functions of one declared watch: predicates, then map to keys, then enqueue.

    ``enqueue`` is called with each key; for the primary resource the key is the object's
    own, for owned resources the controller owner's, for a ``Watch`` what ``map_to``
    returns. ``observe`` (if given) sees every event before the predicates (read your own
    writes uses it).

    Thread-safety: called from the informer's handler thread of this registration only.
    """

    def __init__(self, *, resource: Resource, keys: Callable[[Obj], Iterable[str]],
                 predicates: Iterable[PredicateLike], enqueue: Callable[[str], None],
                 observe: Callable[[Resource, Obj, bool], None] | None = None,
                 name: str = "") -> None:
        self.resource = resource
        self._keys = keys
        self._predicates: tuple[Predicate, ...] = tuple(as_predicate(p) for p in predicates)
        self._enqueue = enqueue
        self._observe = observe
        self._log = _log.bind(controller=name, resource=str(resource))

    def _emit(self, *objects: Obj | None) -> None:
        """Enqueue each key the objects map to, once.

        Raises:
            TypeError: the mapping returned a string or None instead of an iterable of
                keys (a string would otherwise enqueue one "key" per character).
        """
        seen: set[str] = set()
        for obj in objects:
            if obj is None:
                continue
            keys = self._keys(obj)
            if keys is None or isinstance(keys, (str, bytes)):
                raise TypeError(f"map_to of {self.resource} returned {type(keys).__name__}, "
                                "not an iterable of keys: return [key], or [] for none")
            for key in keys:
                if key == "":
                    continue
                if not _is_key(key):
                    # Logged, not raised: one bad key must not drop the good ones.
                    self._log.error("watch_key_invalid", key=repr(key)[:200],
                                    error="a key is 'namespace/name' or a cluster-scoped "
                                          "'name'")
                    continue
                if key in seen:
                    continue
                seen.add(key)
                self._enqueue(key)

    def on_add(self, obj: Obj, is_in_initial_list: bool) -> None:
        """Informer add."""
        if self._observe is not None:
            self._observe(self.resource, obj, False)
        if all(p.create(obj) for p in self._predicates):
            self._emit(obj)

    def on_update(self, old: Obj, new: Obj) -> None:
        """Informer update: both the old and the new object are mapped."""
        if self._observe is not None:
            self._observe(self.resource, new, False)
        if all(p.update(old, new) for p in self._predicates):
            self._emit(old, new)

    def on_delete(self, obj: Obj | DeletedFinalStateUnknown[Obj]) -> None:
        """Informer delete (maybe a tombstone)."""
        last = obj_of(obj)
        if self._observe is not None and last is not None:
            self._observe(self.resource, last, True)
        if not all(p.delete(obj) for p in self._predicates):
            return
        if last is None and isinstance(obj, DeletedFinalStateUnknown):
            self._enqueue_tombstone(obj)
            return
        self._emit(last)

    def _enqueue_tombstone(self, obj: DeletedFinalStateUnknown[Obj]) -> None:
        # No final state: only the primary can still be keyed (by the tombstone's key).
        if self._keys is own_key:
            self._enqueue(meta_namespace_key(obj))
        else:
            self._log.debug("tombstone_without_object", key=obj.key)


def _is_key(key: object) -> bool:
    """Whether ``key`` has the shape ``meta_namespace_key`` gives: ``ns/name`` or ``name``."""
    if not isinstance(key, str):
        return False
    namespace, slash, name = key.partition("/")
    return bool(name and namespace and "/" not in name) if slash else bool(key)


def own_key(obj: Obj) -> Iterable[str]:
    """The primary resource's mapping: the object's own ``namespace/name`` key."""
    return (meta_namespace_key(obj),)


def owner_keys(owner: Resource) -> Callable[[Obj], Iterable[str]]:
    """The owned-resource mapping: the controller owner's key, if it is an ``owner``."""
    def keys(obj: Obj) -> Iterable[str]:
        key = owner_key(owner, obj)
        return (key,) if key else ()
    return keys
