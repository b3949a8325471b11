"""The one-pass decoder of common-shape watch events gives what the general path gives."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from json_strategies import json_scalars, json_values, meta_values

from pycontroller.cache._shared_informer import strip_managed_fields
from pycontroller.client import _lazy
from pycontroller.client._lazy import EventDecoder, LazyObject, loads_event, loads_list

# Every test runs with the C module (where built) and with the pure-Python code.
pytestmark = pytest.mark.usefixtures("lazy_impl")

sys.path.insert(0, str(Path(__file__).parents[3] / "bench"))  # the benchmark's pods

POD: dict[str, Any] = {
    "kind": "Pod", "apiVersion": "v1",
    "metadata": {
        "name": "web-1", "generateName": "web-", "namespace": "shop", "uid": "u-1",
        "resourceVersion": "42", "generation": 3, "creationTimestamp": "2026-12-01T00:00:00Z",
        "deletionTimestamp": None, "deletionGracePeriodSeconds": 30,
        "labels": {"app": "web", "tier": "front"}, "annotations": {"a": "x" * 100},
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                             "uid": "r", "controller": True}],
        "finalizers": ["example.com/f"],
        "managedFields": [{"manager": "kubelet", "fieldsV1": {"f:status": {}}}],
    },
    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    "status": {"phase": "Running"},
}


def line(obj: Any, kind: str = "MODIFIED") -> bytes:
    return orjson.dumps({"type": kind, "object": obj})


def decode(decoder: EventDecoder, obj: Any) -> LazyObject:
    result = decoder(line(obj))["object"]
    assert isinstance(result, LazyObject)
    return result


def test_a_pod_takes_the_one_pass_path_and_reads_as_the_general_one() -> None:
    decoder = EventDecoder()
    fast, general = decode(decoder, POD), loads_event(line(POD))["object"]
    assert decoder._general == 0  # the one-pass path was taken
    meta = fast["metadata"]
    assert not fast.is_decoded("spec") and not fast.is_decoded("status")
    assert not meta.is_decoded("managedFields") and not meta.is_decoded("ownerReferences")
    assert meta.is_decoded("labels") and meta.is_decoded("annotations")
    assert fast == POD == general
    assert orjson.loads(orjson.dumps(fast)) == POD
    assert strip_managed_fields(fast)["metadata"].get("managedFields") is None


def test_short_repeated_strings_are_one_copy_on_both_paths() -> None:
    """Namespaces, kinds and label values of different objects share one string; long
    values are left alone; the table is bounded."""
    other = {**POD, "metadata": {**POD["metadata"], "name": "web-2"}}
    objects = [decode(EventDecoder(), POD), decode(EventDecoder(), other),
               loads_event(line(POD))["object"], loads_event(line(other))["object"]]
    first = objects[0]
    for obj in objects[1:]:
        assert obj["kind"] is first["kind"]
        assert obj["metadata"]["namespace"] is first["metadata"]["namespace"]
        assert obj["metadata"]["labels"]["app"] is first["metadata"]["labels"]["app"]
        assert obj["metadata"]["annotations"]["a"] is not first["metadata"]["annotations"]["a"]
    assert _lazy._STRINGS["shop"] is first["metadata"]["namespace"]


def test_label_and_annotation_keys_are_one_copy_whatever_their_length() -> None:
    """msgspec's key cache only covers keys up to 32 characters (shared there, best
    effort); common longer ones (statefulset.kubernetes.io/pod-name, kubectl's
    last-applied annotation) are shared by us, as sys.intern shared them before."""
    keys = ["app", "app.kubernetes.io/name", "statefulset.kubernetes.io/pod-name",
            "kubectl.kubernetes.io/last-applied-configuration",
            "example.com/a-label-name-longer-than-what-counts-as-a-short-string"]  # > 64
    decoder = EventDecoder()
    metas = [decode(decoder, {**POD, "metadata": {
        "name": name, "labels": dict.fromkeys(keys, "v"),
        "annotations": dict.fromkeys(keys, "w")}})["metadata"] for name in ("a", "b")]
    for field in ("labels", "annotations"):
        first, second = (list(meta[field]) for meta in metas)
        assert first == second == keys
        assert all(x is y for x, y in zip(first, second, strict=True) if len(x) > 32), field


def test_the_string_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    table: dict[str, str] = {}
    monkeypatch.setattr(_lazy, "_STRINGS", table)
    monkeypatch.setattr(_lazy, "_share", table.setdefault)
    for i in range(_lazy._STRINGS_MAX + 10):
        _lazy._shared_str(f"v{i}")
    assert 0 < len(table) <= _lazy._STRINGS_MAX
    assert _lazy._shared_str("x" * (_lazy._INTERN_MAX + 1)) not in table


def test_decoding_keeps_the_string_table_within_one_object_of_its_bound(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On every path, with or without metadata, the table is checked before an object's
    strings go in: it never holds more than the bound plus one object's strings."""
    table: dict[str, str] = {}
    monkeypatch.setattr(_lazy, "_STRINGS", table)
    monkeypatch.setattr(_lazy, "_share", table.setdefault)
    monkeypatch.setattr(_lazy, "_STRINGS_MAX", 8)
    _lazy._use_speedups(_lazy._C)  # the C module takes the new table and bound too
    decoder = EventDecoder()
    for i in range(50):
        decode(decoder, {"kind": f"K{i}", "apiVersion": f"v{i}"})  # no metadata
        assert len(table) <= 8 + 2
        loads_list(orjson.dumps({"items": [{"kind": f"L{i}", "apiVersion": f"w{i}"}]}))
        assert len(table) <= 8 + 2
    for i in range(50):
        meta = {"name": "n", "namespace": f"ns{i}", "labels": {"a": f"a{i}", "b": f"b{i}"}}
        decode(decoder, {"kind": "Pod", "apiVersion": "v1", "metadata": meta})
        assert len(table) <= 8 + 5
    table.clear()
    for i in range(50):  # the general path (a ConfigMap's data) with a common metadata
        meta = {"name": "n", "namespace": f"ns{i}", "labels": {"a": f"a{i}", "b": f"b{i}"}}
        loads_event(line({"metadata": meta, "data": {}}))
        assert len(table) <= 8 + 3


def test_other_shapes_take_the_general_path_and_lose_nothing() -> None:
    config_map = {"kind": "ConfigMap", "apiVersion": "v1", "metadata": {"name": "c"},
                  "data": {"k": "v"}}
    new_meta_field = {**POD, "metadata": {**POD["metadata"], "futureField": {"x": 1}}}
    odd_label = {**POD, "metadata": {**POD["metadata"], "labels": {"n": 1}}}
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "reason": "Expired", "code": 410}
    for obj in (config_map, new_meta_field, odd_label, status):
        decoder = EventDecoder()
        assert decode(decoder, obj) == obj
        assert decoder._general == 64  # refused by the one-pass decoder
        assert decode(decoder, POD) == POD
        assert decoder._general == 63  # the next lines go the general way for a while


def test_scalar_spec_and_status_are_decoded_at_once() -> None:
    obj = decode(EventDecoder(), {"kind": "X", "metadata": {"name": "n"}, "spec": None,
                                  "status": "Ready"})
    assert obj.is_decoded("spec") and obj["spec"] is None and obj["status"] == "Ready"


def test_the_benchmark_pods_decode_alike() -> None:
    import _pods

    decoder = EventDecoder()
    for i in range(50):
        pod = _pods.served(i, "8k")
        assert decode(decoder, pod) == pod
    assert decoder._general == 0


@settings(max_examples=300, deadline=None)
@given(obj=st.fixed_dictionaries({}, optional={
    "kind": st.text(max_size=70), "apiVersion": json_scalars, "metadata": meta_values,
    "spec": json_values, "status": json_values, "data": json_values}))
def test_any_object_decodes_to_what_orjson_gives(obj: dict[str, Any]) -> None:
    decoder = EventDecoder()
    result = decoder(line(obj))
    assert result["type"] == "MODIFIED"
    assert result["object"] == obj
    assert orjson.loads(orjson.dumps(result["object"])) == obj


def test_list_pages_of_common_and_other_shapes_decode_alike() -> None:
    other = {"metadata": {"name": "c"}, "data": {"k": "v"}}
    for items in ([POD, POD], [POD, other], []):
        page = {"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "9"},
                "items": items}
        decoded = loads_list(orjson.dumps(page))
        assert decoded == page
        assert all(isinstance(item, LazyObject) for item in decoded["items"])
