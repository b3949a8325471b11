"""Fixtures shared by the FIFO unit tests (on sys.path through pytest's ``pythonpath``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pycontroller.cache import (
    DeletedFinalStateUnknown,
    Delta,
    DeltaType,
    ObjectKey,
    Queue,
    ThreadSafeStore,
)

Obj = dict[str, Any]
ADDED, UPDATED, DELETED = DeltaType.ADDED, DeltaType.UPDATED, DeltaType.DELETED
REPLACED, RESYNC = DeltaType.REPLACED, DeltaType.RESYNC


def obj(name: str, rv: int = 1) -> Obj:
    """A namespaced object ``ns/name`` at resourceVersion ``rv``."""
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": str(rv)}}


def tomb(name: str, last: Obj | None) -> DeletedFinalStateUnknown[Obj]:
    """The tombstone of ``ns/name`` holding ``last``."""
    return DeletedFinalStateUnknown(ObjectKey(f"ns/{name}"), last)


def ignore(deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
    """Process nothing."""


def drain(fifo: Queue[Obj]) -> list[tuple[Delta[Obj], ...]]:
    """Pop every pending entry."""
    popped = []
    while len(fifo):
        popped.append(fifo.pop(ignore))
    return popped


def known(*objects: Obj) -> ThreadSafeStore[Obj]:
    """An indexer already holding ``objects``."""
    store: ThreadSafeStore[Obj] = ThreadSafeStore()
    for o in objects:
        store.add(o)
    return store
