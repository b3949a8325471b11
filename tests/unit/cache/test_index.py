"""Tests for pycontroller.cache._index: index functions and their validation."""

from __future__ import annotations

from typing import Any

import pytest

from pycontroller.cache import NAMESPACE_INDEX, meta_namespace_index_func
from pycontroller.cache._index import compute_index_values


def test_namespace_index_name_is_client_go_name() -> None:
    assert NAMESPACE_INDEX == "namespace"


def test_namespace_index_func_returns_the_namespace() -> None:
    assert meta_namespace_index_func({"metadata": {"name": "a", "namespace": "ns"}}) == ["ns"]


def test_namespace_index_func_returns_empty_string_for_cluster_scoped() -> None:
    assert meta_namespace_index_func({"metadata": {"name": "a"}}) == [""]


def test_namespace_index_func_rejects_object_without_metadata() -> None:
    with pytest.raises(TypeError, match="no metadata"):
        meta_namespace_index_func({})


def test_index_values_are_deduplicated_in_first_seen_order() -> None:
    def tags(obj: dict[str, Any]) -> list[str]:
        return list(obj["tags"])

    assert compute_index_values({"tags": tags}, {"tags": ["b", "a", "b"]}) == {"tags": ("b", "a")}


def test_index_func_returning_a_str_is_rejected() -> None:
    def bad(obj: dict[str, Any]) -> str:
        return "ns"

    with pytest.raises(TypeError, match="returned the str 'ns'"):
        compute_index_values({"bad": bad}, {})


def test_index_func_returning_non_str_values_is_rejected() -> None:
    def bad(obj: dict[str, Any]) -> list[int]:
        return [1]

    with pytest.raises(TypeError, match="returned a int"):
        compute_index_values({"bad": bad}, {})  # type: ignore[arg-type]
