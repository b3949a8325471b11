"""Tests for pycontroller.cache._lister: the read-only view handlers and reconcilers get."""

from __future__ import annotations

from typing import Any

import pytest

from pycontroller.cache import (
    NAMESPACE_INDEX,
    Lister,
    ThreadSafeStore,
    meta_namespace_index_func,
    meta_namespace_key,
)
from pycontroller.errors import IndexNotFoundError

Obj = dict[str, Any]


def obj(name: str, ns: str = "", **labels: str) -> Obj:
    meta: dict[str, Any] = {"name": name, "labels": labels}
    if ns:
        meta["namespace"] = ns
    return {"metadata": meta}


def by_app(o: Obj) -> list[str]:
    app = o["metadata"]["labels"].get("app")
    return [app] if app else []


@pytest.fixture
def store() -> ThreadSafeStore[Obj]:
    s: ThreadSafeStore[Obj] = ThreadSafeStore(
        indexers={NAMESPACE_INDEX: meta_namespace_index_func, "app": by_app})
    for o in [obj("a", "ns1", app="web", tier="fe"), obj("b", "ns1", app="db"),
              obj("c", "ns2", app="web"), obj("node-1", tier="fe")]:
        s.add(o)
    return s


def keys(objects: list[Obj]) -> list[str]:
    return sorted(meta_namespace_key(o) for o in objects)


def test_get_namespaced_and_cluster_scoped(store: ThreadSafeStore[Obj]) -> None:
    lister = Lister(store)
    assert lister.get("a", namespace="ns1") is store.get_by_key("ns1/a")
    assert lister.get("node-1") is store.get_by_key("node-1")
    assert lister.get("a") is None
    assert lister.get("missing", namespace="ns1") is None


def test_get_by_key(store: ThreadSafeStore[Obj]) -> None:
    assert Lister(store).get_by_key("ns2/c") is store.get_by_key("ns2/c")


def test_list_everything(store: ThreadSafeStore[Obj]) -> None:
    assert keys(Lister(store).list()) == ["node-1", "ns1/a", "ns1/b", "ns2/c"]
    assert len(Lister(store)) == 4


def test_list_with_label_selector_requires_every_pair(store: ThreadSafeStore[Obj]) -> None:
    lister = Lister(store)
    assert keys(lister.list(selector={"app": "web"})) == ["ns1/a", "ns2/c"]
    assert keys(lister.list(selector={"app": "web", "tier": "fe"})) == ["ns1/a"]
    assert keys(lister.list(selector={"app": "nothing"})) == []
    assert keys(lister.list(selector={})) == keys(lister.list())


def test_list_in_namespace_uses_namespace_index(store: ThreadSafeStore[Obj]) -> None:
    lister = Lister(store)
    assert keys(lister.list(namespace="ns1")) == ["ns1/a", "ns1/b"]
    assert keys(lister.list(namespace="ns1", selector={"app": "db"})) == ["ns1/b"]
    assert keys(lister.list(namespace="")) == ["node-1"]


def test_list_in_namespace_scans_without_namespace_index() -> None:
    plain: ThreadSafeStore[Obj] = ThreadSafeStore()
    plain.add(obj("a", "ns1"))
    plain.add(obj("b", "ns2"))
    assert keys(Lister(plain).list(namespace="ns1")) == ["ns1/a"]


def test_objects_without_labels_never_match_a_selector() -> None:
    plain: ThreadSafeStore[Obj] = ThreadSafeStore()
    plain.add({"metadata": {"name": "bare"}})
    assert Lister(plain).list(selector={"app": "web"}) == []
    assert len(Lister(plain).list()) == 1


def test_by_index(store: ThreadSafeStore[Obj]) -> None:
    lister = Lister(store)
    assert keys(lister.by_index("app", "web")) == ["ns1/a", "ns2/c"]
    with pytest.raises(IndexNotFoundError):
        lister.by_index("nope", "x")


def test_lister_exposes_no_write_method(store: ThreadSafeStore[Obj]) -> None:
    lister = Lister(store)
    for name in ("add", "update", "delete", "replace", "add_indexers"):
        assert not hasattr(lister, name)
