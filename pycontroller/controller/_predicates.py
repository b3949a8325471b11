"""Predicates: filter informer events before they enqueue (≙ controller-runtime pkg/predicate).

Data flow: informer handler (``on_add``/``on_update``/``on_delete``) → **predicates** of
the watch → map the object to keys → work queue. A predicate that returns False drops the
event for that watch only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, final

from pycontroller.cache._keys import DeletedFinalStateUnknown

Obj = Mapping[str, Any]
ObjectFilter = Callable[[Obj], bool]


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


@final
class Predicate:
    """Decides per event whether it enqueues: ``create``, ``update`` and ``delete``.

    Build one from functions (``Predicate(update=...)``; a missing function passes every
    event of that kind), take a ready one (``generation_changed`` ...), wrap a plain
    ``obj -> bool`` with :func:`where`, and combine them with :func:`and_`, :func:`or_`,
    :func:`not_`. ``delete`` receives the last known object (a tombstone's object when the
    final state was missed; a tombstone without one always passes).

    Thread-safety: immutable; the functions must be safe to call from handler threads.
    """

    __slots__ = ("_create", "_delete", "_update")

    def __init__(self, *, create: ObjectFilter | None = None,
                 update: Callable[[Obj, Obj], bool] | None = None,
                 delete: ObjectFilter | None = None) -> None:
        self._create = create
        self._update = update
        self._delete = delete

    def create(self, obj: Obj) -> bool:
        """Whether an added object enqueues."""
        return self._create is None or self._create(obj)

    def update(self, old: Obj, new: Obj) -> bool:
        """Whether an update enqueues."""
        return self._update is None or self._update(old, new)

    def delete(self, obj: Obj | DeletedFinalStateUnknown[Obj]) -> bool:
        """Whether a deletion enqueues."""
        if isinstance(obj, DeletedFinalStateUnknown):
            if obj.obj is None:
                return True
            obj = obj.obj
        return self._delete is None or self._delete(obj)


PredicateLike = Predicate | ObjectFilter


def where(fn: ObjectFilter) -> Predicate:
    """Apply ``fn(obj)`` to every event's object (the new one on update).

    ≙ ``predicate.NewPredicateFuncs``. A plain callable in a ``predicates`` tuple is
    wrapped with this.
    """
    return Predicate(create=fn, update=lambda _old, new: fn(new), delete=fn)


def as_predicate(p: PredicateLike) -> Predicate:
    """Return ``p`` itself, or ``where(p)`` for a plain callable."""
    return p if isinstance(p, Predicate) else where(p)


def and_(*predicates: PredicateLike) -> Predicate:
    """Pass an event only when every predicate passes it."""
    ps = [as_predicate(p) for p in predicates]
    return Predicate(create=lambda o: all(p.create(o) for p in ps),
                     update=lambda a, b: all(p.update(a, b) for p in ps),
                     delete=lambda o: all(p.delete(o) for p in ps))


def or_(*predicates: PredicateLike) -> Predicate:
    """Pass an event when at least one predicate passes it."""
    ps = [as_predicate(p) for p in predicates]
    return Predicate(create=lambda o: any(p.create(o) for p in ps),
                     update=lambda a, b: any(p.update(a, b) for p in ps),
                     delete=lambda o: any(p.delete(o) for p in ps))


def not_(predicate: PredicateLike) -> Predicate:
    """Pass exactly the events ``predicate`` drops."""
    p = as_predicate(predicate)
    return Predicate(create=lambda o: not p.create(o),
                     update=lambda a, b: not p.update(a, b),
                     delete=lambda o: not p.delete(o))


def _changed(field: str) -> Callable[[Obj, Obj], bool]:
    return lambda old, new: _meta(old).get(field) != _meta(new).get(field)


#: Updates pass when ``metadata.generation`` changed (spec changes; not status or
#: metadata-only writes). Creates and deletes pass. ≙ ``GenerationChangedPredicate``.
generation_changed = Predicate(update=_changed("generation"))
#: Updates pass when ``metadata.labels`` changed. ≙ ``LabelChangedPredicate``.
labels_changed = Predicate(update=lambda old, new: (_meta(old).get("labels") or {})
                           != (_meta(new).get("labels") or {}))
#: Updates pass when ``metadata.annotations`` changed. ≙ ``AnnotationChangedPredicate``.
annotations_changed = Predicate(update=lambda old, new: (_meta(old).get("annotations") or {})
                                != (_meta(new).get("annotations") or {}))
#: Updates pass when ``metadata.resourceVersion`` changed, i.e. not periodic resyncs.
#: ≙ ``ResourceVersionChangedPredicate``.
resource_version_changed = Predicate(update=_changed("resourceVersion"))


def passes_all(predicates: tuple[Predicate, ...], kind: str, a: Any, b: Any = None) -> bool:
    """Whether an event of ``kind`` ("create", "update", "delete") passes every predicate."""
    if kind == "create":
        return all(p.create(a) for p in predicates)
    if kind == "update":
        return all(p.update(a, b) for p in predicates)
    return all(p.delete(a) for p in predicates)
