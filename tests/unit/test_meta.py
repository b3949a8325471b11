"""Owner references, finalizers and status conditions over plain JSON mappings."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from pycontroller import (
    add_finalizer,
    controller_owner,
    get_condition,
    has_finalizer,
    is_condition_true,
    remove_condition,
    remove_finalizer,
    set_condition,
    set_controller_reference,
    set_owner_reference,
)
from pycontroller.errors import AlreadyOwnedError, CrossNamespaceOwnerError, OwnerReferenceError


def obj(kind: str = "ConfigMap", name: str = "child", namespace: str | None = "ns",
        api_version: str = "v1", uid: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    if uid is not None:
        meta["uid"] = uid
    return {"apiVersion": api_version, "kind": kind, "metadata": meta}


OWNER = obj("Website", "site", api_version="example.com/v1", uid="u-1")


# -- owner references ------------------------------------------------------------------


def test_set_controller_reference_adds_one_controller_ref() -> None:
    child = obj()
    set_controller_reference(OWNER, child)
    assert child["metadata"]["ownerReferences"] == [{
        "apiVersion": "example.com/v1", "kind": "Website", "name": "site", "uid": "u-1",
        "controller": True, "blockOwnerDeletion": True}]
    assert controller_owner(child) == child["metadata"]["ownerReferences"][0]
    set_controller_reference(OWNER, child)  # idempotent
    assert len(child["metadata"]["ownerReferences"]) == 1


def test_same_owner_in_another_version_replaces_the_reference() -> None:
    child = obj()
    set_controller_reference(OWNER, child)
    newer = {**OWNER, "apiVersion": "example.com/v2",
             "metadata": {**OWNER["metadata"], "uid": "u-2"}}
    set_controller_reference(newer, child, block_owner_deletion=False)
    (ref,) = child["metadata"]["ownerReferences"]
    assert (ref["apiVersion"], ref["uid"], ref["blockOwnerDeletion"]) == (
        "example.com/v2", "u-2", False)


def test_another_controller_owner_is_refused() -> None:
    child = obj()
    set_controller_reference(OWNER, child)
    before = copy.deepcopy(child)
    other = obj("Website", "other-site", api_version="example.com/v1", uid="u-9")
    with pytest.raises(AlreadyOwnedError) as info:
        set_controller_reference(other, child)
    assert info.value.owner["name"] == "site" and info.value.name == "child"
    assert "already owned by another Website controller site" in str(info.value)
    assert child == before
    other_kind = obj("Database", "site", api_version="example.com/v1", uid="u-3")
    with pytest.raises(AlreadyOwnedError):
        set_controller_reference(other_kind, child)
    set_owner_reference(other, child)  # a plain owner is still allowed
    assert [r["name"] for r in child["metadata"]["ownerReferences"]] == ["site", "other-site"]
    assert controller_owner(child) is child["metadata"]["ownerReferences"][0]


def test_cross_namespace_and_cluster_scoped_children_are_refused() -> None:
    with pytest.raises(CrossNamespaceOwnerError, match="cross-namespace"):
        set_controller_reference(OWNER, obj(namespace="elsewhere"))
    with pytest.raises(CrossNamespaceOwnerError, match="cluster-scoped"):
        set_owner_reference(OWNER, obj("Namespace", namespace=None))
    assert issubclass(CrossNamespaceOwnerError, OwnerReferenceError)
    assert issubclass(AlreadyOwnedError, ValueError)


def test_cluster_scoped_owner_may_own_namespaced_and_cluster_scoped_objects() -> None:
    owner = obj("Cluster", "c", namespace=None, api_version="example.com/v1", uid="u-c")
    for child in (obj(), obj("ClusterRole", namespace=None)):
        set_controller_reference(owner, child)
        assert controller_owner(child) is not None


def test_owner_without_uid_or_kind_is_a_value_error() -> None:
    with pytest.raises(ValueError, match=r"metadata\.uid"):
        set_owner_reference(obj("Website", "site"), obj())
    no_kind = {"metadata": {"name": "x", "uid": "u", "namespace": "ns"}}
    with pytest.raises(ValueError, match="apiVersion, kind"):
        set_controller_reference(no_kind, obj())


def test_set_owner_reference_is_not_a_controller_and_upserts() -> None:
    child = obj()
    set_owner_reference(OWNER, child)
    set_owner_reference(OWNER, child)
    (ref,) = child["metadata"]["ownerReferences"]
    assert "controller" not in ref and controller_owner(child) is None


# -- finalizers ------------------------------------------------------------------------


def test_finalizers_add_remove_report_changes() -> None:
    o = obj()
    assert not has_finalizer(o, "example.com/cleanup")
    assert add_finalizer(o, "example.com/cleanup") is True
    assert add_finalizer(o, "example.com/cleanup") is False
    assert add_finalizer(o, "example.com/other") is True
    assert o["metadata"]["finalizers"] == ["example.com/cleanup", "example.com/other"]
    assert has_finalizer(o, "example.com/cleanup")
    assert remove_finalizer(o, "example.com/cleanup") is True
    assert remove_finalizer(o, "example.com/cleanup") is False
    assert o["metadata"]["finalizers"] == ["example.com/other"]
    assert remove_finalizer(obj(), "example.com/x") is False


def test_remove_finalizer_removes_duplicates_and_accepts_legacy_names() -> None:
    o = obj()
    o["metadata"]["finalizers"] = ["legacy", "a.io/x", "legacy"]
    assert remove_finalizer(o, "legacy") is True
    assert o["metadata"]["finalizers"] == ["a.io/x"]


@pytest.mark.parametrize("name", [
    "cleanup", "", "Example.com/x", "example.com/", "/x", "example.com/-x",
    "example.com/a/b", "exa_mple.com/x", "example.com/" + "x" * 64, "a" * 254 + "/x",
])
def test_invalid_finalizer_names_are_refused(name: str) -> None:
    o = obj()
    with pytest.raises(ValueError, match="finalizer"):
        add_finalizer(o, name)
    assert "finalizers" not in o["metadata"]


@pytest.mark.parametrize("name", ["example.com/cleanup", "a.b-c.io/Clean_up.v1", "x/y"])
def test_valid_finalizer_names(name: str) -> None:
    assert add_finalizer(obj(), name)


# -- conditions ------------------------------------------------------------------------

T0 = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_new_condition_gets_transition_time_and_generation_of_the_object() -> None:
    o = obj()
    o["metadata"]["generation"] = 7
    assert set_condition(o, "Ready", "False", "Progressing", "rolling out", now=T0) is True
    assert o["status"]["conditions"] == [{
        "type": "Ready", "status": "False", "observedGeneration": 7,
        "lastTransitionTime": "2026-01-02T03:04:05Z", "reason": "Progressing",
        "message": "rolling out"}]
    assert get_condition(o, "Ready") is o["status"]["conditions"][0]
    assert not is_condition_true(o, "Ready")


def test_transition_time_changes_only_with_status() -> None:
    o = obj()
    set_condition(o, "Ready", "False", "Progressing", "a", now=T0)
    assert set_condition(o, "Ready", "False", "Progressing", "a", now=T1) is False
    assert set_condition(o, "Ready", "False", "StillProgressing", "b", now=T1) is True
    cond = get_condition(o, "Ready")
    assert cond is not None
    assert (cond["reason"], cond["message"]) == ("StillProgressing", "b")
    assert cond["lastTransitionTime"] == "2026-01-02T03:04:05Z"
    assert set_condition(o, "Ready", True, "Available", "ok", now=T1) is True
    assert cond["status"] == "True" and cond["lastTransitionTime"] == "2026-01-02T03:09:05Z"
    assert is_condition_true(o, "Ready")


def test_observed_generation_updates_and_can_be_explicit() -> None:
    o = obj()
    o["metadata"]["generation"] = 1
    set_condition(o, "Ready", "True", "Ok", now=T0)
    o["metadata"]["generation"] = 2
    assert set_condition(o, "Ready", "True", "Ok", now=T1) is True
    assert get_condition(o, "Ready") == {
        "type": "Ready", "status": "True", "observedGeneration": 2,
        "lastTransitionTime": "2026-01-02T03:04:05Z", "reason": "Ok", "message": ""}
    assert set_condition(o, "Ready", "True", "Ok", observed_generation=0) is True
    assert "observedGeneration" not in (get_condition(o, "Ready") or {})


def test_conditions_list_target_and_remove() -> None:
    conditions: list[dict[str, Any]] = []
    assert set_condition(conditions, "example.com/Synced", "Unknown", "Pending", now=T0)
    assert set_condition(conditions, "Ready", "True", "Ok", now=T0)
    assert [c["type"] for c in conditions] == ["example.com/Synced", "Ready"]
    assert "observedGeneration" not in conditions[0]
    assert remove_condition(conditions, "example.com/Synced") is True
    assert remove_condition(conditions, "example.com/Synced") is False
    assert [c["type"] for c in conditions] == ["Ready"]
    assert remove_condition(obj(), "Ready") is False
    assert get_condition(obj(), "Ready") is None


@pytest.mark.parametrize(("args", "match"), [
    (("Ready", "true", "Ok"), "status"),
    (("Ready", "Yes", "Ok"), "status"),
    (("Ready", "True", ""), "reason"),
    (("Ready", "True", "1Bad"), "reason"),
    (("Ready", "True", "has space"), "reason"),
    (("Ready", "True", "Trailing,"), "reason"),
    (("", "True", "Ok"), "type"),
    (("bad type", "True", "Ok"), "type"),
    (("Bad.Domain/Ready", "True", "Ok"), "type"),
])
def test_invalid_conditions_are_refused(args: tuple[str, str, str], match: str) -> None:
    o = obj()
    with pytest.raises(ValueError, match=match):
        set_condition(o, *args)  # type: ignore[arg-type]
    assert "status" not in o


def test_reason_punctuation_and_long_message_limits() -> None:
    o = obj()
    assert set_condition(o, "Ready", "False", "Failed:Quota,Exceeded_1", "x" * 32768)
    with pytest.raises(ValueError, match="message"):
        set_condition(o, "Ready", "False", "Failed", "x" * 32769)
    with pytest.raises(ValueError, match="observed_generation"):
        set_condition(o, "Ready", "False", "Failed", observed_generation=-1)
