"""Client writes against the real apiserver: write observers, apply, create_or_update."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import structlog.testing

from pycontroller import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    Client,
    OperationResult,
    add_finalizer,
    remove_finalizer,
    retry_on_conflict,
    set_condition,
    set_controller_reference,
)
from pycontroller.client import RetryBackoff, Write
from pycontroller.errors import ConflictError, InvalidError, NotFoundError

pytestmark = pytest.mark.integration


def test_write_observer_sees_every_successful_write(kube_client: Client,
                                                    kube_namespace: str) -> None:
    seen: list[Write] = []
    lock = threading.Lock()

    def observe(write: Write) -> None:
        with lock:
            seen.append(write)

    view = kube_client.with_write_observer(observe)
    created = view.create(CONFIGMAPS, {"metadata": {"generateName": "obs-"}}, kube_namespace)
    name = created["metadata"]["name"]
    replaced = view.replace(CONFIGMAPS, {**created, "data": {"a": "1"}})
    patched = view.patch(CONFIGMAPS, name, {"data": {"b": "2"}}, kube_namespace)
    deleted = view.delete(CONFIGMAPS, name, kube_namespace)
    with pytest.raises(NotFoundError):  # failed writes are not reported
        view.delete(CONFIGMAPS, name, kube_namespace)
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "unobserved"}}, kube_namespace)

    assert [w.verb for w in seen] == ["create", "replace", "patch", "delete"]
    assert {(w.resource, w.namespace, w.name) for w in seen} == {
        (CONFIGMAPS, kube_namespace, name)}
    assert [w.obj for w in seen] == [created, replaced, patched, deleted]
    assert seen[0].resource_version == created["metadata"]["resourceVersion"]
    assert seen[2].resource_version == patched["metadata"]["resourceVersion"]
    assert int(seen[2].resource_version or 0) > int(seen[1].resource_version or 0)


def test_observer_views_chain_share_the_pool_and_survive_a_failing_observer(
        kube_client: Client, kube_namespace: str) -> None:
    first: list[str] = []
    second: list[str] = []

    def broken(write: Write) -> None:
        raise RuntimeError("observer bug")

    view = kube_client.with_write_observer(lambda w: first.append(w.name))
    chained = view.with_write_observer(broken).with_write_observer(
        lambda w: second.append(w.name))
    with structlog.testing.capture_logs() as logs:
        chained.create(CONFIGMAPS, {"metadata": {"name": "chained"}}, kube_namespace)
    (failed,) = [e for e in logs if e["event"] == "write_observer_failed"]
    assert (failed["error_type"], failed["verb"]) == ("RuntimeError", "create")
    assert "exc_info" not in failed  # no traceback: its frames hold the written object
    view.create(CONFIGMAPS, {"metadata": {"name": "first-only"}}, kube_namespace)
    assert first == ["chained", "first-only"] and second == ["chained"]
    chained.close()  # a view does not close the shared pool
    assert kube_client.get(CONFIGMAPS, "chained", kube_namespace)["metadata"]["name"]


def test_cluster_scoped_writes_report_no_namespace(kube_client: Client) -> None:
    seen: list[Write] = []
    view = kube_client.with_write_observer(seen.append)
    ns = view.create(NAMESPACES, {"metadata": {"generateName": "obs-cluster-"}})
    view.delete(NAMESPACES, ns["metadata"]["name"])
    assert [(w.verb, w.namespace, w.name) for w in seen] == [
        ("create", None, ns["metadata"]["name"]), ("delete", None, ns["metadata"]["name"])]


# -- server-side apply -------------------------------------------------------------------


def _cm(namespace: str, data: dict[str, str], name: str = "applied") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace}, "data": data}


def _managers(obj: dict[str, Any]) -> set[str]:
    return {m["manager"] for m in obj["metadata"].get("managedFields") or []}


def test_apply_two_managers_conflict_and_force(kube_client: Client,
                                               kube_namespace: str) -> None:
    first = kube_client.apply(CONFIGMAPS, _cm(kube_namespace, {"a": "1", "shared": "x"}),
                              field_manager="first")
    assert first["data"] == {"a": "1", "shared": "x"} and first["kind"] == "ConfigMap"
    # a second manager adds its own field: no conflict, both fields stay
    second = kube_client.apply(CONFIGMAPS, _cm(kube_namespace, {"b": "2"}),
                               field_manager="second")
    assert second["data"] == {"a": "1", "shared": "x", "b": "2"}
    assert _managers(second) >= {"first", "second"}
    # ... but may not change a field the first one owns, unless forced
    with pytest.raises(ConflictError) as info:
        kube_client.apply(CONFIGMAPS, _cm(kube_namespace, {"b": "2", "shared": "y"}),
                          field_manager="second")
    assert info.value.status == 409 and "shared" in info.value.message
    assert kube_client.get(CONFIGMAPS, "applied", kube_namespace)["data"]["shared"] == "x"
    forced = kube_client.apply(CONFIGMAPS, _cm(kube_namespace, {"b": "2", "shared": "y"}),
                               field_manager="second", force=True)
    assert forced["data"] == {"a": "1", "shared": "y", "b": "2"}
    # the first manager lost "shared": dropping "a" from its intent removes "a" only
    after = kube_client.apply(CONFIGMAPS, _cm(kube_namespace, {}), field_manager="first")
    assert after["data"] == {"shared": "y", "b": "2"}


def test_an_object_read_back_can_be_applied(kube_client: Client,
                                            kube_namespace: str) -> None:
    stored = kube_client.apply(CONFIGMAPS, _cm(kube_namespace, {"a": "1"}),
                               field_manager="m")
    assert stored["metadata"]["managedFields"]
    again = kube_client.apply(CONFIGMAPS, {**stored, "data": {"a": "2"}}, field_manager="m")
    assert again["data"] == {"a": "2"}
    with pytest.raises(ConflictError):  # its resourceVersion makes the apply conditional
        kube_client.apply(CONFIGMAPS, {**stored, "data": {"a": "3"}}, field_manager="m")


def test_apply_validates_its_arguments(kube_client: Client, kube_namespace: str) -> None:
    with pytest.raises(ValueError, match="field_manager"):
        kube_client.apply(CONFIGMAPS, _cm(kube_namespace, {}), field_manager="")
    with pytest.raises(ValueError, match="namespace"):
        kube_client.apply(CONFIGMAPS, {"metadata": {"name": "x"}}, field_manager="m")
    with pytest.raises(ValueError, match="name"):
        kube_client.apply(CONFIGMAPS, {"metadata": {"namespace": kube_namespace}},
                          field_manager="m")


def _deployment(namespace: str, replicas: int) -> dict[str, Any]:
    labels = {"app": "web"}
    return {"metadata": {"name": "web", "namespace": namespace}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": labels}, "template": {
            "metadata": {"labels": labels},
            "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def test_apply_status_writes_only_status(kube_client: Client, kube_namespace: str) -> None:
    created = kube_client.apply(DEPLOYMENTS, {**_deployment(kube_namespace, 1),
                                              "status": {"replicas": 7}},
                                field_manager="ctl")
    assert created["spec"]["replicas"] == 1
    assert "replicas" not in created.get("status", {})  # the main resource ignores status
    intent = _deployment(kube_namespace, 5)  # a spec change that must not be written
    # Deployment conditions have no observedGeneration; the intent has no generation
    set_condition(intent, "Available", "True", "Applied", "by the test")
    intent["status"]["replicas"] = 3
    written = kube_client.apply_status(DEPLOYMENTS, intent, field_manager="ctl")
    assert written["status"]["replicas"] == 3
    assert written["status"]["conditions"][0]["reason"] == "Applied"
    assert written["spec"]["replicas"] == 1
    assert written["metadata"]["generation"] == created["metadata"]["generation"]
    stored = kube_client.get(DEPLOYMENTS, "web", kube_namespace)
    assert stored["spec"]["replicas"] == 1 and stored["status"]["replicas"] == 3
    with pytest.raises(NotFoundError):
        kube_client.apply_status(DEPLOYMENTS, {"metadata": {
            "name": "missing", "namespace": kube_namespace}, "status": {"replicas": 1}},
            field_manager="ctl")


def test_apply_is_reported_to_write_observers(kube_client: Client,
                                              kube_namespace: str) -> None:
    seen: list[Write] = []
    view = kube_client.with_write_observer(seen.append)
    view.apply(CONFIGMAPS, _cm(kube_namespace, {"a": "1"}), field_manager="m")
    view.apply(DEPLOYMENTS, _deployment(kube_namespace, 1), field_manager="m")
    view.apply_status(DEPLOYMENTS, {**_deployment(kube_namespace, 1),
                                    "status": {"replicas": 1}}, field_manager="m")
    assert [(w.verb, w.resource, w.subresource) for w in seen] == [
        ("apply", CONFIGMAPS, None), ("apply", DEPLOYMENTS, None),
        ("apply", DEPLOYMENTS, "status")]


# -- create_or_update and retry_on_conflict --------------------------------------------


def test_create_or_update_creates_updates_and_leaves_alone(kube_client: Client,
                                                           kube_namespace: str) -> None:
    seen: list[str] = []
    view = kube_client.with_write_observer(lambda w: seen.append(w.verb))

    def want(value: str) -> Any:
        def mutate(obj: dict[str, Any]) -> None:
            obj.setdefault("data", {})["key"] = value
            obj["metadata"].setdefault("labels", {})["owner"] = "test"
        return mutate

    result, created = view.create_or_update(CONFIGMAPS, "cou", want("1"), kube_namespace)
    assert result is OperationResult.CREATED and created["data"] == {"key": "1"}
    result, same = view.create_or_update(CONFIGMAPS, "cou", want("1"), kube_namespace)
    assert result is OperationResult.UNCHANGED
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    result, updated = view.create_or_update(CONFIGMAPS, "cou", want("2"), kube_namespace)
    assert result is OperationResult.UPDATED and updated["data"] == {"key": "2"}
    assert seen == ["create", "replace"]  # the unchanged call wrote nothing
    assert result.value == "updated"

    def rename(obj: dict[str, Any]) -> None:
        obj["metadata"]["name"] = "other"

    with pytest.raises(ValueError, match="name or namespace"):
        view.create_or_update(CONFIGMAPS, "cou", rename, kube_namespace)


def test_create_or_update_of_a_cluster_scoped_object(kube_client: Client) -> None:
    name = "cou-cluster-scoped"
    try:
        result, ns = kube_client.create_or_update(
            NAMESPACES, name, lambda o: o["metadata"].setdefault("labels", {}).update(a="1"))
        assert result is OperationResult.CREATED and ns["metadata"]["labels"]["a"] == "1"
    finally:
        kube_client.delete(NAMESPACES, name)


def test_create_or_update_conflict_is_retried_by_retry_on_conflict(
        kube_client: Client, kube_namespace: str) -> None:
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "race"}, "data": {"n": "0"}},
                       kube_namespace)
    calls = 0
    interfere = 0

    def bump(obj: dict[str, Any]) -> None:
        nonlocal calls, interfere
        calls += 1
        if calls == 1:  # someone else writes between our GET and our PUT
            interfere += 1
            kube_client.patch(CONFIGMAPS, "race", {"data": {"other": str(interfere)}},
                              kube_namespace)
        obj["data"]["n"] = str(int(obj["data"]["n"]) + 1)

    with pytest.raises(ConflictError):
        kube_client.create_or_update(CONFIGMAPS, "race", bump, kube_namespace)
    assert kube_client.get(CONFIGMAPS, "race", kube_namespace)["data"]["n"] == "0"
    calls = 0
    result, obj = retry_on_conflict(
        lambda: kube_client.create_or_update(CONFIGMAPS, "race", bump, kube_namespace))
    assert calls == 2 and result is OperationResult.UPDATED
    assert obj["data"] == {"n": "1", "other": "2"}


def test_retry_on_conflict_gives_up_after_the_backoff_steps(kube_client: Client,
                                                            kube_namespace: str) -> None:
    stale = kube_client.create(CONFIGMAPS, {"metadata": {"name": "stale"}}, kube_namespace)
    kube_client.patch(CONFIGMAPS, "stale", {"data": {"a": "1"}}, kube_namespace)
    attempts = 0

    def write_stale() -> Any:
        nonlocal attempts
        attempts += 1
        return kube_client.replace(CONFIGMAPS, stale)  # always the old resourceVersion

    with pytest.raises(ConflictError):
        retry_on_conflict(write_stale, backoff=RetryBackoff(steps=3, duration=0.001))
    assert attempts == 3
    attempts = 0
    with pytest.raises(ConflictError):
        retry_on_conflict(write_stale)
    assert attempts == 5  # client-go's DefaultRetry


def test_retry_on_conflict_does_not_retry_other_errors(kube_client: Client,
                                                       kube_namespace: str) -> None:
    attempts = 0

    def invalid() -> Any:
        nonlocal attempts
        attempts += 1
        return kube_client.create(CONFIGMAPS, {"metadata": {"name": "Not_Valid"}},
                                  kube_namespace)

    with pytest.raises(InvalidError):
        retry_on_conflict(invalid)
    assert attempts == 1


# -- helpers the API server must accept ------------------------------------------------


def test_owner_references_and_finalizers_are_accepted_by_the_server(
        kube_client: Client, kube_namespace: str) -> None:
    owner = kube_client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, kube_namespace)
    child: dict[str, Any] = {"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "child", "namespace": kube_namespace}}
    set_controller_reference(owner, child)
    assert add_finalizer(child, "example.com/cleanup")
    stored = kube_client.create(CONFIGMAPS, child)
    (ref,) = stored["metadata"]["ownerReferences"]
    assert (ref["uid"], ref["controller"], ref["blockOwnerDeletion"]) == (
        owner["metadata"]["uid"], True, True)
    assert stored["metadata"]["finalizers"] == ["example.com/cleanup"]
    assert remove_finalizer(stored, "example.com/cleanup")
    cleared = kube_client.replace(CONFIGMAPS, stored)
    assert not cleared["metadata"].get("finalizers")
