"""Tests for pycontroller.cache._keys (checklist items 37 and 38)."""

from __future__ import annotations

import copy
import dataclasses
import pickle
from typing import Any

import pytest

from pycontroller.cache import (
    DeletedFinalStateUnknown,
    ObjectKey,
    meta_namespace_key,
    split_meta_namespace_key,
)


def test_namespaced_object_key_is_namespace_slash_name() -> None:  # item 37
    obj = {"metadata": {"name": "web-1", "namespace": "prod"}}
    assert meta_namespace_key(obj) == "prod/web-1"


@pytest.mark.parametrize("meta", [{"name": "node-1"}, {"name": "node-1", "namespace": ""},
                                  {"name": "node-1", "namespace": None}])
def test_cluster_scoped_object_key_is_name(meta: dict[str, Any]) -> None:  # item 37
    assert meta_namespace_key({"metadata": meta}) == "node-1"


def test_tombstone_key_is_its_stored_key() -> None:  # item 37
    tombstone: DeletedFinalStateUnknown[Any] = DeletedFinalStateUnknown(ObjectKey("ns/gone"), None)
    assert meta_namespace_key(tombstone) == "ns/gone"


def test_tombstone_key_wins_over_its_object() -> None:
    obj = {"metadata": {"name": "other", "namespace": "x"}}
    assert meta_namespace_key(DeletedFinalStateUnknown(ObjectKey("ns/gone"), obj)) == "ns/gone"


def test_key_of_object_without_metadata_names_the_problem() -> None:
    with pytest.raises(ValueError, match="no metadata"):
        meta_namespace_key({"kind": "Pod"})


@pytest.mark.parametrize("meta", [{}, {"name": ""}, {"name": 3}, {"namespace": "ns"}])
def test_key_of_object_without_a_name_names_the_problem(meta: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"metadata\.name"):
        meta_namespace_key({"metadata": meta})


def test_key_of_non_mapping_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="expected a mapping, got list"):
        meta_namespace_key([1, 2])  # type: ignore[arg-type]


def test_key_of_object_with_non_mapping_metadata_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="metadata is str"):
        meta_namespace_key({"metadata": "nope"})


def test_key_with_non_string_namespace_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"metadata\.namespace"):
        meta_namespace_key({"metadata": {"name": "a", "namespace": 7}})


def test_split_key_with_namespace() -> None:
    assert split_meta_namespace_key("prod/web-1") == ("prod", "web-1")


def test_split_cluster_scoped_key() -> None:
    assert split_meta_namespace_key("node-1") == ("", "node-1")


def test_split_key_with_two_slashes_is_an_error() -> None:  # item 38
    with pytest.raises(ValueError, match="unexpected key format"):
        split_meta_namespace_key("a/b/c")


@pytest.mark.parametrize("key", ["", "ns/"])
def test_split_key_with_empty_name_is_an_error(key: str) -> None:
    with pytest.raises(ValueError, match="empty name"):
        split_meta_namespace_key(key)


def test_split_inverts_key() -> None:
    obj = {"metadata": {"name": "a", "namespace": "b"}}
    assert split_meta_namespace_key(meta_namespace_key(obj)) == ("b", "a")


def test_tombstone_is_frozen_slotted_and_compares_by_value() -> None:
    tombstone = DeletedFinalStateUnknown(ObjectKey("a"), {"x": 1})
    with pytest.raises(dataclasses.FrozenInstanceError):
        tombstone.key = ObjectKey("b")  # type: ignore[misc]
    assert not hasattr(tombstone, "__dict__")
    assert tombstone == DeletedFinalStateUnknown(ObjectKey("a"), {"x": 1})


def test_tombstone_can_be_built_through_a_subscripted_alias_copied_and_pickled() -> None:
    # slots=True would make the first line raise TypeError on Python 3.11
    tombstone = DeletedFinalStateUnknown[dict[str, Any]](ObjectKey("a"), {"x": [1]})
    assert copy.deepcopy(tombstone) == tombstone
    assert copy.deepcopy(tombstone).obj is not tombstone.obj
    assert pickle.loads(pickle.dumps(tombstone)) == tombstone
    assert hash(DeletedFinalStateUnknown(ObjectKey("a"), None)) == hash(
        DeletedFinalStateUnknown(ObjectKey("a"), None))
