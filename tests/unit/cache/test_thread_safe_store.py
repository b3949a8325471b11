"""Tests for pycontroller.cache._thread_safe_store (checklist items 39-44)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontroller.cache import (
    NAMESPACE_INDEX,
    DeletedFinalStateUnknown,
    Indexer,
    IndexFunc,
    ObjectKey,
    ThreadSafeStore,
    meta_namespace_index_func,
    meta_namespace_key,
)
from pycontroller.errors import IndexNotFoundError

Obj = dict[str, Any]


def obj(name: str, ns: str = "default", *, app: str = "", tags: Iterable[str] = (),
        rv: str = "1") -> Obj:
    labels = {"app": app} if app else {}
    return {"metadata": {"name": name, "namespace": ns, "labels": labels,
                         "resourceVersion": rv}, "tags": list(tags)}


def by_app(o: Obj) -> list[str]:
    app = o["metadata"]["labels"].get("app")
    return [app] if app else []


def by_tags(o: Obj) -> list[str]:
    return list(o["tags"])


def new_store() -> ThreadSafeStore[Obj]:
    return ThreadSafeStore(indexers={NAMESPACE_INDEX: meta_namespace_index_func,
                                     "app": by_app, "tags": by_tags})


def test_thread_safe_store_is_an_indexer() -> None:
    indexer: Indexer[Obj] = new_store()  # checked by mypy
    assert len(indexer) == 0


def test_add_then_get_returns_the_stored_instance() -> None:
    store = new_store()
    a = obj("a")
    assert store.add(a) is None
    assert store.get(a) is a
    assert store.get_by_key("default/a") is a
    assert store.get_by_key("default/missing") is None


def test_add_and_update_overwrite_and_return_previous() -> None:
    store = new_store()
    first, second, third = obj("a", rv="1"), obj("a", rv="2"), obj("a", rv="3")
    store.add(first)
    assert store.add(second) is first
    assert store.update(third) is second
    assert store.list() == [third]


def test_delete_returns_removed_object_and_ignores_absent_keys() -> None:
    store = new_store()
    a = obj("a", app="web")
    store.add(a)
    assert store.delete(obj("a")) is a
    assert store.delete(obj("a")) is None
    assert len(store) == 0
    assert store.list_index_func_values("app") == []


def test_delete_accepts_a_tombstone() -> None:
    store = new_store()
    store.add(obj("a"))
    store.delete(DeletedFinalStateUnknown(ObjectKey("default/a"), None))
    assert store.list_keys() == []


def test_list_and_list_keys_are_snapshots() -> None:
    store = new_store()
    store.add(obj("a"))
    keys, items = store.list_keys(), store.list()
    store.add(obj("b"))
    assert keys == ["default/a"]
    assert len(items) == 1


def test_label_change_moves_key_between_index_values() -> None:  # item 39
    store = new_store()
    store.add(obj("a", app="web"))
    store.update(obj("a", app="db"))
    assert store.index_keys("app", "web") == []
    assert store.index_keys("app", "db") == ["default/a"]


def test_emptied_index_value_vanishes_from_list_index_func_values() -> None:  # item 39
    store = new_store()
    store.add(obj("a", app="web"))
    store.add(obj("b", app="web"))
    store.update(obj("a", app="db"))
    assert sorted(store.list_index_func_values("app")) == ["db", "web"]
    store.delete(obj("b"))
    assert store.list_index_func_values("app") == ["db"]


def test_index_deduplicates_objects_matching_several_values() -> None:  # item 40
    store = new_store()
    a, b, c = obj("a", tags=["x", "y"]), obj("b", tags=["y", "z"]), obj("c", tags=["q"])
    for o in (a, b, c):
        store.add(o)
    result = store.index("tags", obj("probe", tags=["x", "y", "z"]))
    assert sorted(meta_namespace_key(o) for o in result) == ["default/a", "default/b"]


def test_index_with_single_value() -> None:
    store = new_store()
    store.add(obj("a", app="web"))
    store.add(obj("b", app="db"))
    assert [meta_namespace_key(o) for o in store.index("app", obj("p", app="web"))] == [
        "default/a"]


def test_duplicate_values_from_one_index_func_index_the_key_once() -> None:
    store = new_store()
    store.add(obj("a", tags=["x", "x"]))
    assert store.by_index("tags", "x") == [obj("a", tags=["x", "x"])]


@pytest.mark.parametrize("query", [
    lambda s: s.by_index("nope", "v"),
    lambda s: s.index("nope", obj("a")),
    lambda s: s.index_keys("nope", "v"),
    lambda s: s.list_index_func_values("nope"),
])
def test_unknown_index_name_raises_index_not_found(query: Any) -> None:  # item 41
    with pytest.raises(IndexNotFoundError, match="'nope' does not exist"):
        query(new_store())


def test_index_not_found_is_a_lookup_error() -> None:
    with pytest.raises(LookupError):
        new_store().by_index("nope", "v")


def test_add_indexers_with_duplicate_name_errors_and_adds_nothing() -> None:  # item 42
    store = new_store()
    with pytest.raises(ValueError, match="indexer conflict"):
        store.add_indexers({"fresh": by_app, "app": by_app})
    assert set(store.get_indexers()) == {NAMESPACE_INDEX, "app", "tags"}


def test_new_index_covers_preexisting_items() -> None:  # item 42
    store: ThreadSafeStore[Obj] = ThreadSafeStore()
    store.add(obj("a", app="web"))
    store.add(obj("b", app="web"))
    store.add_indexers({"app": by_app})
    assert store.index_keys("app", "web") == ["default/a", "default/b"]
    store.add(obj("c", app="web"))
    assert len(store.by_index("app", "web")) == 3


def test_replace_rebuilds_indexes_and_drops_stale_entries() -> None:  # item 43
    store = new_store()
    store.add(obj("a", app="web"))
    store.add(obj("b", app="old"))
    fresh = obj("a", app="db")
    store.replace({ObjectKey("default/a"): fresh})
    assert store.list() == [fresh]
    assert store.list_index_func_values("app") == ["db"]
    assert store.index_keys("app", "old") == []
    assert store.index_keys("app", "web") == []


def test_failing_index_function_stores_the_object_outside_that_index_only(
) -> None:  # item 44, changed by issue 8 item 1: a write is never lost to one index
    def broken(o: Obj) -> list[str]:
        if o["metadata"]["name"] == "bad":
            raise RuntimeError("index exploded")
        return ["ok"]

    store: ThreadSafeStore[Obj] = ThreadSafeStore(
        indexers={"b": broken, "app": by_app, NAMESPACE_INDEX: meta_namespace_index_func})
    store.add(obj("a", app="web"))
    store.add(obj("bad", app="web"))
    assert store.index_errors == 1
    assert store.get_by_key("default/bad") is not None
    assert store.index_keys("b", "ok") == ["default/a"]
    assert store.index_keys("app", "web") == ["default/a", "default/bad"]
    store.replace({ObjectKey(f"default/{n}"): obj(n, app="web") for n in ("x", "bad", "y")})
    assert store.index_errors == 2
    assert sorted(store.list_keys()) == ["default/bad", "default/x", "default/y"]
    assert store.index_keys("b", "ok") == ["default/x", "default/y"]
    assert store.index_keys(NAMESPACE_INDEX, "default") == [
        "default/bad", "default/x", "default/y"]
    store.update(obj("bad", app="db"))  # its old values leave every index as usual
    assert store.index_keys("app", "db") == ["default/bad"]


def test_add_indexers_error_adds_no_index() -> None:
    def broken(o: Obj) -> list[str]:
        raise RuntimeError("boom")

    store = new_store()
    store.add(obj("a"))
    with pytest.raises(RuntimeError, match="boom"):
        store.add_indexers({"broken": broken})
    assert "broken" not in store.get_indexers()


def test_index_keys_are_sorted() -> None:
    store = new_store()
    for name in ["c", "a", "b"]:
        store.add(obj(name, app="web"))
    assert store.index_keys("app", "web") == ["default/a", "default/b", "default/c"]


def test_namespace_index() -> None:
    store = new_store()
    store.add(obj("a", "ns1"))
    store.add(obj("b", "ns2"))
    store.add({"metadata": {"name": "node", "labels": {}}, "tags": []})
    assert store.index_keys(NAMESPACE_INDEX, "ns1") == ["ns1/a"]
    assert store.index_keys(NAMESPACE_INDEX, "") == ["node"]


def test_custom_key_func() -> None:
    store: ThreadSafeStore[str] = ThreadSafeStore(key_func=lambda o: ObjectKey(str(o)))
    store.add("x")
    assert store.get_by_key("x") == "x"


def test_get_indexers_is_read_only() -> None:
    indexers = new_store().get_indexers()
    with pytest.raises(TypeError):
        indexers["x"] = by_app  # type: ignore[index]


def test_concurrent_writers_and_add_indexers_keep_indexes_consistent() -> None:
    store: ThreadSafeStore[Obj] = ThreadSafeStore()
    errors: list[BaseException] = []

    def writer(offset: int) -> None:
        try:
            for i in range(300):
                store.update(obj(f"o{(offset + i) % 50}", app=f"a{i % 7}"))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n * 13,)) for n in range(3)]
    for t in threads:
        t.start()
    store.add_indexers({"app": by_app})
    for t in threads:
        t.join(timeout=30)
        assert not t.is_alive()
    assert errors == []
    assert_indexes_match(store, {"app": by_app})


# ---- model-based property test -----------------------------------------------------------

def assert_indexes_match(store: ThreadSafeStore[Obj], indexers: dict[str, IndexFunc[Obj]]) -> None:
    items = {meta_namespace_key(o): o for o in store.list()}
    assert sorted(items) == sorted(store.list_keys())
    for name, func in indexers.items():
        expected: dict[str, set[str]] = {}
        for key, o in items.items():
            for value in func(o):
                expected.setdefault(value, set()).add(key)
        assert sorted(store.list_index_func_values(name)) == sorted(expected)
        for value, keys in expected.items():
            assert store.index_keys(name, value) == sorted(keys)


names = st.sampled_from(["a", "b", "c", "d"])
namespaces = st.sampled_from(["n1", "n2", ""])
objects = st.builds(obj, names, namespaces, app=st.sampled_from(["", "web", "db"]),
                    tags=st.lists(st.sampled_from(["x", "y", "z"]), max_size=3))
ops = st.one_of(
    st.tuples(st.just("add"), objects),
    st.tuples(st.just("delete"), objects),
    st.tuples(st.just("replace"), st.lists(objects, max_size=5)),
    st.tuples(st.just("add_indexers"), st.just(None)),
)


@settings(database=None, deadline=None, max_examples=300)
@given(st.lists(ops, max_size=30))
def test_indexes_always_match_a_naive_model(operations: list[tuple[str, Any]]) -> None:
    indexers: dict[str, IndexFunc[Obj]] = {NAMESPACE_INDEX: meta_namespace_index_func,
                                           "app": by_app}
    store: ThreadSafeStore[Obj] = ThreadSafeStore(indexers=indexers)
    model: dict[str, Obj] = {}
    for op, arg in operations:
        if op == "add":
            store.add(arg)
            model[meta_namespace_key(arg)] = arg
        elif op == "delete":
            store.delete(arg)
            model.pop(meta_namespace_key(arg), None)
        elif op == "replace":
            model = {meta_namespace_key(o): o for o in arg}
            store.replace({ObjectKey(k): o for k, o in model.items()})
        elif "tags" not in indexers:
            indexers["tags"] = by_tags
            store.add_indexers({"tags": by_tags})
        assert {meta_namespace_key(o): o for o in store.list()} == model
        assert_indexes_match(store, indexers)
