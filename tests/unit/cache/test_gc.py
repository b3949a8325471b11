"""Tests for pycontroller.cache._gc.freeze_cache (process-global: each test unfreezes)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from typing import Any

import pytest
from structlog.testing import capture_logs

from pycontroller.cache import freeze_cache


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()


def tracked_pods(n: int) -> list[dict[str, Any]]:
    return [{"metadata": {"name": f"p{i}", "labels": {"a": "b"}}, "spec": {"c": [{}]}}
            for i in range(n)]


def test_cached_objects_are_not_visited_by_full_collections_after_freeze() -> None:
    pods = tracked_pods(100)
    with capture_logs() as logs:
        freeze_cache()
    assert gc.get_freeze_count() > 0
    assert not any(obj is pods[0] for obj in gc.get_objects())
    assert logs[0]["event"] == "gc_frozen"
    assert logs[0]["log_level"] == "info"


def test_collect_first_frees_garbage_cycles_instead_of_freezing_them() -> None:
    class Node:
        other: Any = None

    a, b = Node(), Node()
    a.other, b.other = b, a
    ref = weakref.ref(a)
    del a, b
    with capture_logs() as logs:
        freeze_cache()
    assert ref() is None
    assert logs[0]["collected_objects"] >= 2


def test_frozen_acyclic_objects_are_still_freed_by_refcount() -> None:
    pods = tracked_pods(1000)
    with capture_logs():
        freeze_cache()
    before = gc.get_freeze_count()
    del pods
    assert gc.get_freeze_count() < before


def test_freeze_without_collect() -> None:
    with capture_logs() as logs:
        freeze_cache(collect=False)
    assert logs[0]["collected_objects"] == 0
    assert gc.get_freeze_count() > 0
