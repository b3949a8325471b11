"""Client writes against the real apiserver: write observers, apply, create_or_update."""

from __future__ import annotations

import threading

import pytest

from pycontroller import CONFIGMAPS, NAMESPACES, Client
from pycontroller.client import Write
from pycontroller.errors import NotFoundError

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
    chained.create(CONFIGMAPS, {"metadata": {"name": "chained"}}, kube_namespace)
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
