"""Predicates and their composition (pure logic)."""

from __future__ import annotations

from typing import Any

from pycontroller import (
    Predicate,
    and_,
    annotations_changed,
    generation_changed,
    labels_changed,
    not_,
    or_,
    resource_version_changed,
    where,
)
from pycontroller.cache import DeletedFinalStateUnknown, ObjectKey


def obj(gen: int = 1, rv: str = "1", labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None, status: str = "") -> dict[str, Any]:
    return {"metadata": {"name": "a", "namespace": "ns", "generation": gen,
                         "resourceVersion": rv, "labels": labels or {},
                         "annotations": annotations or {}},
            "status": {"phase": status}}


def test_generation_changed_drops_status_only_updates() -> None:
    assert not generation_changed.update(obj(rv="1"), obj(rv="2", status="Ready"))
    assert generation_changed.update(obj(gen=1), obj(gen=2))
    assert generation_changed.create(obj()) and generation_changed.delete(obj())


def test_metadata_predicates() -> None:
    assert labels_changed.update(obj(), obj(labels={"a": "b"}))
    assert not labels_changed.update(obj(rv="1"), obj(rv="2"))
    assert annotations_changed.update(obj(), obj(annotations={"a": "b"}))
    assert not annotations_changed.update(obj(labels={"x": "y"}), obj())
    assert resource_version_changed.update(obj(rv="1"), obj(rv="2"))
    assert not resource_version_changed.update(obj(rv="1"), obj(rv="1"))  # a resync


def test_composition() -> None:
    either = or_(generation_changed, labels_changed)
    assert either.update(obj(), obj(labels={"a": "b"}))
    assert not either.update(obj(rv="1"), obj(rv="2"))
    both = and_(generation_changed, labels_changed)
    assert not both.update(obj(), obj(gen=2))
    assert both.update(obj(), obj(gen=2, labels={"a": "b"}))
    assert not_(generation_changed).update(obj(rv="1"), obj(rv="2"))
    assert not not_(generation_changed).create(obj())


def test_plain_callables_filter_every_event_kind() -> None:
    named_a = where(lambda o: o["metadata"]["name"] == "a")
    assert named_a.create(obj()) and named_a.update(obj(), obj())
    other = {"metadata": {"name": "b"}}
    assert not named_a.create(other) and not named_a.delete(other)
    assert not and_(lambda o: False, generation_changed).create(obj())
    custom = Predicate(update=lambda old, new: False)
    assert custom.create(obj()) and not custom.update(obj(), obj())


def test_tombstones() -> None:
    named_b = where(lambda o: o["metadata"]["name"] == "b")
    assert named_b.delete(DeletedFinalStateUnknown(ObjectKey("ns/x"), None))
    assert not named_b.delete(DeletedFinalStateUnknown(ObjectKey("ns/a"), obj()))
