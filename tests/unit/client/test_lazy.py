"""LazyObject: a dict whose nested values decode on first read, indistinguishable on read."""

from __future__ import annotations

import copy
import ctypes
import gc
import json
import operator
import pickle
import sys
import threading
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from pycontroller.cache import DeltaFIFO, RealFIFO, ThreadSafeStore
from pycontroller.cache._mutation_detector import CacheMutationDetector
from pycontroller.cache._shared_informer import strip_managed_fields
from pycontroller.client import _lazy
from pycontroller.client._lazy import EventDecoder, LazyObject, loads_event, loads_list
from pycontroller.client._watch import WatchDecodeError, decode_event

# Every test runs with the C module (where built) and with the pure-Python code.
pytestmark = pytest.mark.usefixtures("lazy_impl")

POD: dict[str, Any] = {
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "p", "namespace": "ns", "resourceVersion": "7",
                 "labels": {"app": "x"}, "ownerReferences": [{"kind": "ReplicaSet"}],
                 "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}]},
    "spec": {"containers": [{"name": "c", "image": "i", "ports": [{"containerPort": 80}]}],
             "nodeName": "n"},
    "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    "items": [1, 2, 3], "count": 3, "flag": None,
}


def lazy(obj: dict[str, Any] = POD) -> LazyObject:
    event = loads_event(orjson.dumps({"type": "ADDED", "object": obj}))
    result = event["object"]
    assert isinstance(result, LazyObject)
    return result


def test_metadata_and_scalars_are_eager_nested_values_lazy() -> None:
    obj = lazy()
    assert obj.is_decoded("metadata") and obj.is_decoded("kind") and obj.is_decoded("count")
    meta = obj["metadata"]
    assert isinstance(meta, LazyObject) and not meta.is_decoded("managedFields")
    assert meta.is_decoded("labels") and meta["labels"] == {"app": "x"}
    assert not obj.is_decoded("spec") and not obj.is_decoded("status")
    assert obj["spec"]["nodeName"] == "n"
    assert obj.is_decoded("spec") and not obj.is_decoded("status")
    assert obj["spec"] is obj["spec"]  # decoded once, kept


def test_every_read_sees_the_decoded_object() -> None:
    obj = lazy()
    assert obj == POD and obj.__ne__(POD) is False and operator.eq(POD, lazy())
    assert lazy() == lazy()
    assert dict(obj) == POD and {**lazy()} == POD
    assert json.loads(json.dumps(lazy())) == POD
    assert orjson.loads(orjson.dumps(lazy())) == POD
    assert orjson.loads(orjson.dumps(lazy(), option=orjson.OPT_SORT_KEYS)) == POD
    assert copy.deepcopy(lazy()) == POD and copy.copy(lazy()) == POD
    assert pickle.loads(pickle.dumps(lazy())) == POD
    assert dict(lazy().items()) == POD and list(lazy().values()) == list(POD.values())
    assert sorted(lazy()) == sorted(POD) and len(lazy()) == len(POD)
    assert lazy().get("status") == POD["status"] and lazy().get("nope", 1) == 1
    assert eval(repr(lazy()), {"null": None}) == POD
    assert (lazy() | {"x": 1}) == {**POD, "x": 1} and ({"x": 1} | lazy()) == {"x": 1, **POD}


def test_deep_copies_are_independent_plain_dicts() -> None:
    obj = lazy()
    clone = copy.deepcopy(obj)
    clone["spec"]["nodeName"] = "other"
    assert type(clone) is dict and obj["spec"]["nodeName"] == "n"


def test_writes_before_caching() -> None:
    obj = lazy()
    strip_managed_fields(obj)
    assert "managedFields" not in obj["metadata"] and obj["metadata"].is_decoded("x")
    assert obj.pop("status") == POD["status"] and "status" not in obj
    assert obj.setdefault("spec", {}) == POD["spec"]
    obj["items"] = []
    obj.update(count=4)
    assert obj["items"] == [] and obj["count"] == 4
    assert orjson.loads(orjson.dumps(obj))["items"] == []
    del obj["spec"]
    assert "spec" not in obj and obj.materialize() is obj


def test_decode_event_builds_lazy_objects_and_still_rejects_bad_lines() -> None:
    event = decode_event(orjson.dumps({"type": "MODIFIED", "object": POD}))
    assert event.type == "MODIFIED" and isinstance(event.object, LazyObject)
    assert event.object == POD
    for line in (b"{not json", b"[]", b'{"type":"ADDED"}', b'{"type":"NOPE","object":{}}',
                 b'{"type":"ADDED","object":[]}', b'{"type":1,"object":{}}'):
        with pytest.raises(WatchDecodeError):
            decode_event(line)


def decoded_pods(
    prepare: Callable[[LazyObject], LazyObject] = lambda obj: obj,
) -> Iterator[tuple[str, LazyObject]]:
    """The same pod from each decoding path: general and one-pass, watch line and page."""
    general = {**POD, "extra": {"x": 1}}  # not the kind/apiVersion/metadata/spec/status shape
    shaped = {k: v for k, v in POD.items() if k in ("apiVersion", "kind", "metadata", "spec",
                                                    "status")}
    for name, source in (("general", general), ("shaped", shaped)):
        line = orjson.dumps({"type": "ADDED", "object": source})
        yield f"{name} event", prepare(loads_event(line)["object"])
        yield f"{name} stream", prepare(EventDecoder()(line)["object"])
        yield f"{name} page", prepare(loads_list(orjson.dumps({"items": [source]}))["items"][0])


def cached(obj: LazyObject) -> LazyObject:
    """``obj`` as an informer caches it: the default transform, then ``leave_gc`` (what
    the FIFOs do with every incoming object)."""
    strip_managed_fields(obj)
    _lazy.leave_gc(obj)
    return obj


def cached_pods() -> Iterator[tuple[str, LazyObject]]:
    """:func:`decoded_pods` as an informer caches them (no reference kept here)."""
    return decoded_pods(cached)


def test_a_cached_pod_holds_no_gc_tracked_container() -> None:
    for path, obj in cached_pods():
        meta = dict.__getitem__(obj, "metadata")
        tracked = [o for o in (obj, meta, *dict.values(obj), *dict.values(meta))
                   if gc.is_tracked(o)]
        assert tracked == [], path  # labels: only strings; ownerReferences: raw until read
        assert not any(o is obj for o in gc.get_objects()), path


def test_without_ctypes_or_on_another_interpreter_objects_stay_tracked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def tracked_after_untrack() -> bool:
        obj: dict[str, Any] = {"a": []}
        _lazy._gc_untracker()(obj)
        return gc.is_tracked(obj)

    assert not tracked_after_untrack()  # CPython with ctypes
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "ctypes", None)  # `import ctypes` raises ImportError
        assert tracked_after_untrack()
    with monkeypatch.context() as m:
        m.setattr(sys, "implementation", types.SimpleNamespace(name="pypy"))
        assert tracked_after_untrack()


def containers(value: Any) -> list[Any]:
    """Every dict and list in ``value``, read from the storage (decoding nothing)."""
    found: list[Any] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.append(node)
            stack.extend(dict.values(node))
        elif isinstance(node, list):
            found.append(node)
            stack.extend(node)
    return found


def test_what_a_cached_pod_decodes_on_read_stays_untracked() -> None:
    for path, obj in cached_pods():
        assert obj["spec"]["containers"][0]["ports"] == [{"containerPort": 80}]
        obj.materialize()  # status, metadata.ownerReferences and managedFields too
        assert obj["spec"] == POD["spec"] and obj["status"] == POD["status"], path
        assert obj["metadata"]["ownerReferences"] == POD["metadata"]["ownerReferences"], path
        everything = containers(obj)
        assert len(everything) > 10, path
        assert [c for c in everything if gc.is_tracked(c)] == [], path
        assert not any(o is obj for o in gc.get_objects()), path


@pytest.mark.skipif(sys.version_info >= (3, 14),
                    reason="CPython 3.14 tracks dicts from birth and no longer re-tracks "
                           "one on insert (gh-127010): leave_gc does not rely on it")
def test_storing_a_container_into_a_cached_object_tracks_it_again_up_to_3_13() -> None:
    class Sentinel:
        pass

    for path, obj in cached_pods():
        obj["extra"] = {"a": [1]}  # (a cached object must not be mutated: CPython's part)
        assert gc.is_tracked(obj), path
        spec = obj["spec"]  # decoded into a tracked object: left to the collector
        assert gc.is_tracked(spec) and gc.is_tracked(spec["containers"]), path
        meta = obj["metadata"]
        meta["ownerReferences"] = [meta]  # a cycle through the metadata
        assert gc.is_tracked(meta), path
        sentinel = Sentinel()
        freed = weakref.ref(sentinel)
        meta["labels"]["s"] = sentinel
        del obj, meta, sentinel, spec
        gc.collect()
        assert freed() is None, path  # the cycle was collected


def test_metadata_objects_other_than_labels_and_annotations_stay_raw_until_read() -> None:
    source = {**POD, "metadata": {**POD["metadata"], "finalizers": ["f"],
                                  "annotations": {"a": "b"}}}
    meta = lazy(source)["metadata"]
    assert meta.is_decoded("labels") and meta.is_decoded("annotations")
    assert meta.is_decoded("name") and meta.is_decoded("resourceVersion")
    for key in ("ownerReferences", "finalizers", "managedFields"):
        assert not meta.is_decoded(key)
    assert meta.get("ownerReferences") == [{"kind": "ReplicaSet"}]
    assert meta.is_decoded("ownerReferences") and not meta.is_decoded("finalizers")
    assert meta["ownerReferences"] is meta["ownerReferences"]
    assert meta == source["metadata"]


def test_objects_of_the_same_shape_share_their_bookkeeping() -> None:
    first, second = lazy(), lazy()
    assert first._lazy is second._lazy  # one shared tuple of undecoded keys, not one each
    assert first["metadata"]._lazy is second["metadata"]._lazy
    first["spec"]  # a read
    assert first._lazy is not None and second._lazy is not None
    assert "spec" not in first._lazy and "spec" in second._lazy


def test_materialize_decodes_metadata_too() -> None:
    obj = lazy().materialize()
    assert obj.is_decoded("spec") and obj.is_decoded("status")
    assert obj["metadata"].is_decoded("ownerReferences")
    assert obj["metadata"].is_decoded("managedFields")


def test_concurrent_first_reads_decode_once() -> None:
    obj = lazy()
    seen: list[Any] = []
    barrier = threading.Barrier(8)

    def read() -> None:
        barrier.wait()
        seen.append(obj["spec"])

    threads = [threading.Thread(target=read) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 1


@pytest.mark.allow_cache_mutation
def test_mutation_detector_ignores_reads_and_catches_writes() -> None:
    detector = CacheMutationDetector(enabled=True, raise_on_mutation=False)
    # keys out of sorted order: a raw value re-encoded after a read would change the hash
    owners = [{"name": "rs", "kind": "ReplicaSet"}]
    obj = lazy({**POD, "metadata": {**POD["metadata"], "ownerReferences": owners}})
    detector.add_object(obj)
    assert obj["status"]["phase"] == "Running"  # a read decodes: not a mutation
    assert obj["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet"
    assert detector.check() == []
    obj["spec"]["nodeName"] = "changed"
    assert detector.check() == ["ns/p"]


@pytest.mark.parametrize("meta", [
    {"name": "a", "managedFields": [{"manager": "m"}], "labels": {"x": "y"}},
    {"managedFields": [{"manager": "m"}], "name": "a"},
    {"name": "a", "labels": {"x": "y"}, "managedFields": [{"manager": "m"}]},
    {"managedFields": [{"manager": "m"}]},
    {"name": "a", "annotations": {"note": '"managedFields":[{"manager":"m"}]'},
     "managedFields": [{"manager": "m"}]},
    {"name": "a"},
])
def test_metadata_keeps_managed_fields_raw_wherever_they_are(meta: dict[str, Any]) -> None:
    obj = lazy({"kind": "Pod", "metadata": meta})
    decoded = obj["metadata"]
    if "managedFields" in meta:
        assert not decoded.is_decoded("managedFields")
    assert orjson.loads(orjson.dumps(obj)) == {"kind": "Pod", "metadata": meta}
    assert decoded == meta
    if "managedFields" in meta:
        obj = lazy({"kind": "Pod", "metadata": meta})
        strip_managed_fields(obj)
        assert obj["metadata"] == {k: v for k, v in meta.items() if k != "managedFields"}


def test_pretty_printed_lines_decode_too() -> None:
    line = json.dumps({"type": "ADDED", "object": POD}, indent=2).encode()
    event = decode_event(line)
    assert not event.object["metadata"].is_decoded("managedFields")
    assert event.object == POD


def test_list_pages_decode_items_lazily() -> None:
    page = {"kind": "PodList", "apiVersion": "v1",
            "metadata": {"resourceVersion": "9", "continue": "t"}, "items": [POD, POD]}
    decoded = loads_list(orjson.dumps(page))
    assert all(isinstance(item, LazyObject) and not item.is_decoded("spec")
               for item in decoded["items"])
    assert decoded == page
    assert loads_list(b'{"kind":"PodList","items":null}') == {"kind": "PodList", "items": None}
    assert loads_list(b'{"kind":"Status","code":500}') == {"kind": "Status", "code": 500}
    assert loads_list(b'{"items":[1]}') == {"items": [1]}
    with pytest.raises(orjson.JSONDecodeError):
        loads_list(b"{nope")


def test_objects_a_caller_lists_or_watches_are_collected_like_dicts() -> None:
    """Untracking is for cached objects only: a caller's own objects from ``Client.list``
    or ``Client.watch`` (here their decoders) keep the collector's usual guarantees, so an
    owner graph built on them with back-references is freed once dropped."""

    class Node:
        pod: Any = None

    for path, pod in decoded_pods():
        assert gc.is_tracked(pod) and gc.is_tracked(pod["metadata"]), path
        node = Node()
        node.pod = pod  # the caller's node → the object → ... → the node again
        pod["spec"]["containers"][0]["node"] = node
        pod["metadata"]["ownerReferences"][0]["resolved"] = node
        freed = weakref.ref(node)
        del node, pod
        gc.collect()
        assert freed() is None, path


class Handle:
    """Something a transform might store that is no JSON value (tracked by the GC)."""

    obj: Any = None


def test_the_fifos_untrack_what_they_queue_unless_the_transform_stored_a_non_json_value(
) -> None:
    def tag(obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["tags"] = ["x", {"y": [1]}]  # JSON: still out of the GC's sight
        return obj

    def keep_handle(obj: dict[str, Any]) -> dict[str, Any]:
        handle = Handle()
        handle.obj = obj  # a cycle: obj → metadata → labels → handle → obj
        obj["metadata"]["labels"]["h"] = handle
        return obj

    for fifo_type in (DeltaFIFO, RealFIFO):
        for path, obj in decoded_pods():
            fifo_type(transform=tag, known_objects=ThreadSafeStore()).add(obj)
            assert containers(obj) and not any(map(gc.is_tracked, containers(obj))), path
        for path, obj in decoded_pods():
            fifo_type(transform=tag, known_objects=ThreadSafeStore()).replace([obj], "1")
            assert not any(map(gc.is_tracked, containers(obj))), path
        for path, obj in decoded_pods():
            fifo = fifo_type(transform=keep_handle, known_objects=ThreadSafeStore())
            fifo.update(obj)
            meta = obj["metadata"]
            assert gc.is_tracked(obj) and gc.is_tracked(meta), path
            assert gc.is_tracked(meta["labels"]), path
            freed = weakref.ref(meta["labels"]["h"])
            del fifo, obj, meta
            gc.collect()
            assert freed() is None, path  # the transform's cycle is collected


def test_leave_gc_untracks_json_containers_however_they_were_made() -> None:
    plain: dict[str, Any] = {"a": []}
    _lazy.leave_gc(plain)  # not a decoded object: left alone
    assert gc.is_tracked(plain)
    for path, obj in decoded_pods():
        assert obj["spec"]["containers"]  # decoded while tracked: a tracked tree
        labels = obj["metadata"]["labels"]
        labels["tmp"] = []  # tracked, as CPython 3.14 tracks every dict from birth
        del labels["tmp"]
        assert gc.is_tracked(labels), path
        _lazy.leave_gc(obj)
        assert not any(map(gc.is_tracked, containers(obj))), path


def test_the_untracker_is_its_own_function_object(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ctypes.pythonapi.X`` is one cached object per process: another library setting its
    ``argtypes`` (say ``c_void_p`` for ``id(obj)``) must not change how pycontroller calls
    ``PyObject_GC_UnTrack``, nor pycontroller's settings how that library calls it."""
    shared = ctypes.pythonapi.PyObject_GC_UnTrack
    monkeypatch.setattr(shared, "argtypes", [ctypes.c_void_p])  # the other library
    untrack = _lazy._gc_untracker()
    assert untrack is not shared and shared.argtypes == [ctypes.c_void_p]
    obj: dict[str, Any] = {"a": []}
    untrack(obj)
    _lazy._untrack(obj)  # the module's own, made at import
    assert not gc.is_tracked(obj)
    obj["b"] = []
    shared(id(obj))  # the other library's call still works
    assert not gc.is_tracked(obj)


def test_a_cycle_of_json_containers_a_transform_made_stays_tracked() -> None:
    def loop(obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        meta["extra"] = {"back": [meta]}  # metadata → dict → list → metadata
        return obj

    for path, obj in decoded_pods():
        fifo = RealFIFO(transform=loop, known_objects=ThreadSafeStore())
        fifo.add(obj)  # no RecursionError
        meta = obj["metadata"]
        assert gc.is_tracked(obj) and gc.is_tracked(meta), path
        assert gc.is_tracked(meta["extra"]) and gc.is_tracked(meta["extra"]["back"]), path
        assert not gc.is_tracked(meta["labels"]), path  # off the cycle: untracked
        gc.collect()
        del fifo, obj, meta
        assert gc.collect() >= 3, path  # the metadata, the dict and the list


def test_a_read_reentering_a_decode_on_the_same_thread_neither_deadlocks_nor_is_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A finalizer or gc callback may run while _decode holds the module lock and read
    # other lazy values: here, inside the decode of outer's spec.
    outer, other = lazy(), lazy()
    inner: list[Any] = []
    entered = threading.Event()

    class Reentrant:
        def __getattr__(self, name: str) -> Any:
            return getattr(orjson, name)

        def loads(self, data: bytes) -> Any:
            if not entered.is_set():  # the outer decode: read two more, once
                entered.set()
                inner.append(other["spec"]["nodeName"])  # another object
                inner.append(outer["status"]["phase"])  # another key of the same object
            return orjson.loads(data)

    monkeypatch.setattr(_lazy, "orjson", Reentrant())
    result: list[Any] = []
    reader = threading.Thread(target=lambda: result.append(outer["spec"]), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "the decode deadlocked on its own lock"
    assert inner == ["n", "Running"] and result == [POD["spec"]]
    assert outer.is_decoded("spec") and outer.is_decoded("status")


def test_leave_gc_leaves_an_object_nested_deeper_than_the_recursion_limit_tracked() -> None:
    (_, obj), *_ = decoded_pods()
    deep: list[Any] = []
    for _ in range(sys.getrecursionlimit() + 100):  # as a transform might have decoded it
        deep = [deep]
    obj["deep"] = deep
    _lazy.leave_gc(obj)  # no RecursionError out of the FIFO
    assert gc.is_tracked(obj)
