"""The same tests on the in-memory FakeAPIServer and on the real kube-apiserver.

Each test takes ``api`` (a client and a fresh namespace) and runs twice: ``[fake]`` and
``[real]``. A behaviour the fake gets wrong fails its ``[fake]`` run; the ``[real]`` run
proves the expectation is kube-apiserver's.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from examples.configmap_stamper.controller import ANNOTATION, ConfigMapStamper
from pycontroller import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    Client,
    DeletedFinalStateUnknown,
    Manager,
    SharedInformerFactory,
)
from pycontroller.errors import (
    ConflictError,
    InvalidError,
    NotFoundError,
    ResourceExpiredError,
)
from pycontroller.testing import FakeAPIServer, run_manager, wait_for

pytestmark = pytest.mark.integration


@dataclass
class Api:
    client: Client
    namespace: str
    compact: Callable[[], object]


@pytest.fixture(params=["fake", "real"])
def api(request: pytest.FixtureRequest) -> Iterator[Api]:
    if request.param == "real":
        yield Api(request.getfixturevalue("kube_client"),
                  request.getfixturevalue("kube_namespace"),
                  request.getfixturevalue("kube_envtest").compact_etcd)
        return
    with FakeAPIServer() as server, server.client() as client:
        client.create(NAMESPACES, {"metadata": {"name": "contract"}})
        yield Api(client, "contract", server.compact)


def cm(name: str, labels: dict[str, str] | None = None, **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "labels": labels or {}}, "data": data}


def deployment(name: str, image: str = "app:1") -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"containers": [{"name": "main", "image": image}]}}}}


def test_create_read_and_optimistic_concurrency(api: Api) -> None:
    c, ns = api.client, api.namespace
    created = c.create(CONFIGMAPS, cm("a", k="1"), ns)
    assert created["metadata"]["uid"] and created["metadata"]["namespace"] == ns
    assert "generation" not in created["metadata"]  # ConfigMaps have none
    rv = created["metadata"]["resourceVersion"]
    assert isinstance(rv, str)
    with pytest.raises(ConflictError) as exists:
        c.create(CONFIGMAPS, cm("a"), ns)
    assert exists.value.reason == "AlreadyExists"
    with pytest.raises(NotFoundError):
        c.get(CONFIGMAPS, "missing", ns)
    updated = c.replace(CONFIGMAPS, {**created, "data": {"k": "2"}})
    assert updated["metadata"]["resourceVersion"] != rv
    with pytest.raises(ConflictError) as stale:
        c.replace(CONFIGMAPS, {**created, "data": {"k": "3"}})  # still carries the old rv
    assert stale.value.reason == "Conflict"
    same = c.replace(CONFIGMAPS, updated)  # a no-op write changes nothing
    assert same["metadata"]["resourceVersion"] == updated["metadata"]["resourceVersion"]
    assert c.get(CONFIGMAPS, "a", ns)["data"] == {"k": "2"}


def test_generation_and_the_status_subresource(api: Api) -> None:
    c, ns = api.client, api.namespace
    d = c.create(DEPLOYMENTS, deployment("web"), ns)
    assert d["metadata"]["generation"] == 1
    labelled = c.patch(DEPLOYMENTS, "web", {"metadata": {"labels": {"tier": "front"}}}, ns)
    assert labelled["metadata"]["generation"] == 1  # metadata is not spec
    changed = c.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 3}}, ns)
    assert changed["metadata"]["generation"] == 2
    status = c.patch(DEPLOYMENTS, "web", {"status": {"observedGeneration": 2}}, ns,
                     subresource="status")
    assert status["status"]["observedGeneration"] == 2
    assert status["metadata"]["generation"] == 2
    assert status["spec"]["replicas"] == 3
    ignored = c.patch(DEPLOYMENTS, "web", {"status": {"observedGeneration": 7},
                                           "spec": {"replicas": 4}}, ns)
    assert ignored["status"]["observedGeneration"] == 2  # status only through /status
    assert ignored["spec"]["replicas"] == 4 and ignored["metadata"]["generation"] == 3
    put = c.replace(DEPLOYMENTS, {**ignored, "status": {"observedGeneration": 3}},
                    subresource="status")
    assert put["status"]["observedGeneration"] == 3 and put["spec"]["replicas"] == 4


def test_label_and_field_selectors(api: Api) -> None:
    c, ns = api.client, api.namespace
    c.create(CONFIGMAPS, cm("red", {"color": "red", "size": "s"}), ns)
    c.create(CONFIGMAPS, cm("blue", {"color": "blue"}), ns)
    c.create(CONFIGMAPS, cm("plain"), ns)

    def names(**selectors: str) -> set[str]:
        return {o["metadata"]["name"] for o in c.list_all(CONFIGMAPS, ns, **selectors)} - {
            "kube-root-ca.crt"}

    assert names(label_selector="color=red") == {"red"}
    assert names(label_selector="color==red") == {"red"}
    assert names(label_selector="color!=red") == {"blue", "plain"}
    assert names(label_selector="color in (red,blue)") == {"red", "blue"}
    assert names(label_selector="color notin (red)") == {"blue", "plain"}
    assert names(label_selector="color") == {"red", "blue"}
    assert names(label_selector="!color") == {"plain"}
    assert names(label_selector="color=red,size=s") == {"red"}
    assert names(field_selector="metadata.name=blue") == {"blue"}
    assert names(field_selector="metadata.name!=blue") == {"red", "plain"}
    assert names(label_selector="color", field_selector="metadata.name=red") == {"red"}


def test_pagination(api: Api) -> None:
    c, ns = api.client, api.namespace
    for i in range(5):
        c.create(CONFIGMAPS, cm(f"page-{i}", {"paged": "yes"}), ns)
    first = c.list(CONFIGMAPS, ns, label_selector="paged", limit=2)
    assert len(first["items"]) == 2 and first["metadata"]["continue"]
    rest = c.list(CONFIGMAPS, ns, label_selector="paged", limit=10,
                  continue_token=first["metadata"]["continue"])
    seen = [o["metadata"]["name"] for o in first["items"] + rest["items"]]
    assert sorted(seen) == [f"page-{i}" for i in range(5)]
    assert not rest["metadata"].get("continue")


def test_merge_json_and_apply_patches(api: Api) -> None:
    c, ns = api.client, api.namespace
    obj = c.create(CONFIGMAPS, cm("p", a="1", b="2"), ns)
    merged = c.patch(CONFIGMAPS, "p", {"data": {"a": "10", "b": None, "c": "3"}}, ns)
    assert merged["data"] == {"a": "10", "c": "3"}
    jsonp = c.patch(CONFIGMAPS, "p", [
        {"op": "add", "path": "/data/d", "value": "4"},
        {"op": "replace", "path": "/data/a", "value": "11"},
        {"op": "remove", "path": "/data/c"},
        {"op": "test", "path": "/data/d", "value": "4"},
    ], ns, patch_type="json")
    assert jsonp["data"] == {"a": "11", "d": "4"}
    with pytest.raises(ConflictError):
        c.patch(CONFIGMAPS, "p", {"metadata": {"resourceVersion":
                                               obj["metadata"]["resourceVersion"]},
                                  "data": {"a": "x"}}, ns)
    applied = c.patch(CONFIGMAPS, "applied", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"},
        "data": {"k": "v"}}, ns, patch_type="apply", field_manager="contract-test")
    assert applied["data"] == {"k": "v"}
    again = c.patch(CONFIGMAPS, "applied", {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"},
        "data": {"k": "w"}}, ns, patch_type="apply", field_manager="contract-test")
    assert again["data"] == {"k": "w"}


def test_finalizers_hold_deletion(api: Api) -> None:
    c, ns = api.client, api.namespace
    c.create(CONFIGMAPS, {**cm("held"), "metadata": {
        "name": "held", "finalizers": ["example.com/cleanup"]}}, ns)
    c.delete(CONFIGMAPS, "held", ns)
    deleting = c.get(CONFIGMAPS, "held", ns)
    assert deleting["metadata"]["deletionTimestamp"]
    with pytest.raises(InvalidError):
        c.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": [
            "example.com/cleanup", "example.com/another"]}}, ns)
    c.patch(CONFIGMAPS, "held", {"metadata": {"finalizers": None}}, ns)
    wait_for(lambda: _gone(c, ns, "held"), 30)


def _gone(c: Client, ns: str, name: str) -> bool:
    try:
        c.get(CONFIGMAPS, name, ns)
    except NotFoundError:
        return True
    return False


def test_watch_resumes_from_a_resource_version(api: Api) -> None:
    c, ns = api.client, api.namespace
    created = c.create(CONFIGMAPS, cm("w", v="1"), ns)
    c.patch(CONFIGMAPS, "w", {"data": {"v": "2"}}, ns)
    c.delete(CONFIGMAPS, "w", ns)
    stream = c.watch(CONFIGMAPS, ns, resource_version=created["metadata"]["resourceVersion"],
                     timeout_seconds=5, allow_bookmarks=False)
    events = []
    for event in stream:
        events.append((event.type, event.object["metadata"]["name"]))
        if event.type == "DELETED":
            stream.close()
            break
    assert events == [("MODIFIED", "w"), ("DELETED", "w")]


def test_a_watch_from_a_compacted_version_is_gone(api: Api) -> None:
    c, ns = api.client, api.namespace
    old = c.create(CONFIGMAPS, cm("old"), ns)["metadata"]["resourceVersion"]
    c.patch(CONFIGMAPS, "old", {"data": {"v": "2"}}, ns)
    c.create(CONFIGMAPS, cm("newer"), ns)
    api.compact()
    with pytest.raises(ResourceExpiredError):
        stream = c.watch(CONFIGMAPS, ns, resource_version=old, timeout_seconds=5)
        for event in stream:
            if event.type == "ERROR":
                stream.close()
                raise ResourceExpiredError(410, "Expired", str(event.object))
            pytest.fail(f"an event from a compacted history: {event}")


def test_informer_follows_a_label_selector(api: Api) -> None:
    c, ns = api.client, api.namespace
    factory = SharedInformerFactory(c, namespace=ns)
    informer = factory.informer_for(CONFIGMAPS, label_selector="watched=yes")
    seen: list[tuple[str, str]] = []
    lock = threading.Lock()

    def record(kind: str) -> Any:
        def handler(*args: Any) -> None:
            obj: Mapping[str, Any] | DeletedFinalStateUnknown[Any] = args[-1] \
                if kind != "add" else args[0]
            name = obj.key.rpartition("/")[2] if isinstance(obj, DeletedFinalStateUnknown) \
                else obj["metadata"]["name"]
            with lock:
                seen.append((kind, name))
        return handler

    informer.add_event_handler(on_add=record("add"), on_update=record("update"),
                               on_delete=record("delete"))
    stop = threading.Event()
    factory.start(stop)
    try:
        assert all(factory.wait_for_cache_sync(stop, timeout=30).values())
        c.create(CONFIGMAPS, cm("in", {"watched": "yes"}), ns)
        c.create(CONFIGMAPS, cm("out"), ns)
        wait_for(lambda: ("add", "in") in seen, 30)
        c.patch(CONFIGMAPS, "in", {"data": {"x": "1"}}, ns)
        wait_for(lambda: ("update", "in") in seen, 30)
        c.patch(CONFIGMAPS, "in", {"metadata": {"labels": {"watched": "no"}}}, ns)
        wait_for(lambda: ("delete", "in") in seen, 30)  # left the selector
        c.patch(CONFIGMAPS, "out", {"metadata": {"labels": {"watched": "yes"}}}, ns)
        wait_for(lambda: ("add", "out") in seen, 30)  # entered it
        assert {o["metadata"]["name"] for o in informer.lister.list()} == {"out"}
    finally:
        stop.set()
        factory.shutdown(30)


def test_a_controller_reconciles_the_same_way(api: Api) -> None:
    manager = Manager(api.client, namespace=api.namespace, metrics_bind_address=None,
                      health_probe_bind_address=None, handle_signals=False,
                      registry=CollectorRegistry())
    manager.add(ConfigMapStamper())
    c, ns = api.client, api.namespace
    with run_manager(manager):
        c.create(CONFIGMAPS, cm("s", {"stamp": "true"}, k="1"), ns)

        def stamp() -> Any:
            return (c.get(CONFIGMAPS, "s", ns)["metadata"].get("annotations") or {}).get(
                ANNOTATION)

        first = wait_for(stamp, 30)
        c.patch(CONFIGMAPS, "s", {"data": {"k": "2"}}, ns)
        wait_for(lambda: stamp() not in (None, first), 30)
        with contextlib.suppress(NotFoundError):
            c.delete(CONFIGMAPS, "s", ns)
