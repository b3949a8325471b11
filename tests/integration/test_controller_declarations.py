"""Declared watches against the real apiserver: owned children, mapped watches, predicates,
indexers, and readiness that waits for every cache."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from helpers import running
from prometheus_client import CollectorRegistry

from pycontroller import (
    CONFIGMAPS,
    DEPLOYMENTS,
    NAMESPACES,
    SECRETS,
    Client,
    Controller,
    Manager,
    Requeue,
    Resource,
    Watch,
    connect,
    generation_changed,
)
from pycontroller._util._wait import wait_for

pytestmark = pytest.mark.integration


class Recording(Controller):
    """Records every key it reconciles (thread-safe)."""

    resource = CONFIGMAPS
    label_selector: str | None = "role=parent"

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.keys: list[str] = []

    def reconcile(self, key: str) -> Requeue | None:
        with self.lock:
            self.keys.append(key)
        return None

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.keys)

    def clear(self) -> None:
        with self.lock:
            self.keys.clear()


def parent(name: str, **data: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"role": "parent"}}, "data": data}


def owner_ref(owner: dict[str, Any], kind: str = "ConfigMap") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": kind, "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True}


def secret(name: str, *refs: dict[str, Any], value: str = "0") -> dict[str, Any]:
    return {"metadata": {"name": name, "ownerReferences": list(refs)},
            "stringData": {"v": value}}


class OwnsSecrets(Recording):
    owns = (SECRETS,)


def test_owned_child_enqueues_its_owner_only_and_an_ownership_change_both(
        kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    p1, p2, p3 = (kube_client.create(CONFIGMAPS, parent(n), ns) for n in ("p1", "p2", "p3"))
    controller = OwnsSecrets()
    with running(kube_client, ns, controller):
        wait_for(lambda: {f"{ns}/p1", f"{ns}/p2", f"{ns}/p3"} <= set(controller.seen()),
                 timeout=30)
        controller.clear()
        kube_client.create(SECRETS, secret("s", owner_ref(p1)), ns)
        kube_client.create(SECRETS, secret("marker", owner_ref(p3)), ns)
        # Same informer, same handler: the marker's event is delivered after the child's.
        wait_for(lambda: f"{ns}/p3" in controller.seen(), timeout=30)
        assert f"{ns}/p1" in controller.seen()
        assert f"{ns}/p2" not in controller.seen()

        controller.clear()
        moved = kube_client.get(SECRETS, "s", ns)
        moved["metadata"]["ownerReferences"] = [owner_ref(p2)]
        kube_client.replace(SECRETS, moved)
        wait_for(lambda: {f"{ns}/p1", f"{ns}/p2"} <= set(controller.seen()), timeout=30,
                 message="old and new owner reconciled")
        assert f"{ns}/p3" not in controller.seen()


class NamespaceChildren(Controller):
    """Primary: Namespaces (cluster-scoped); owns namespaced ConfigMaps."""

    resource = NAMESPACES
    owns = (CONFIGMAPS,)

    def __init__(self, watched: str) -> None:
        super().__init__()
        self.watched = watched
        self.keys: list[str] = []

    def reconcile(self, key: str) -> Requeue | None:
        if key == self.watched:
            self.keys.append(key)
        return None


def test_namespaced_children_of_a_cluster_scoped_owner(
        kube_client: Client, kube_namespace: str) -> None:
    ns_obj = kube_client.get(NAMESPACES, kube_namespace)
    controller = NamespaceChildren(kube_namespace)
    with running(kube_client, kube_namespace, controller):
        wait_for(lambda: controller.keys, timeout=30)
        before = len(controller.keys)
        kube_client.create(CONFIGMAPS, {"metadata": {
            "name": "child", "ownerReferences": [owner_ref(ns_obj, kind="Namespace")]}},
            kube_namespace)
        wait_for(lambda: len(controller.keys) > before, timeout=30,
                 message="the namespace reconciled for its child")


def secret_index(obj: Any) -> list[str]:
    name = (obj.get("data") or {}).get("secret")
    return [f"{obj['metadata']['namespace']}/{name}"] if name else []


class MapsSecrets(Recording):
    """Parents name a Secret in ``data.secret``; a Secret change reconciles its users."""

    indexers = {CONFIGMAPS: {"by-secret": secret_index}}  # noqa: RUF012

    def users_of(self, obj: Any) -> list[str]:
        key = f"{obj['metadata']['namespace']}/{obj['metadata']['name']}"
        return [f"{p['metadata']['namespace']}/{p['metadata']['name']}"
                for p in self.lister.by_index("by-secret", key)]

    watches = (Watch(SECRETS, map_to=users_of),)


def test_mapped_watch_enqueues_the_mapped_keys_through_an_index(
        kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    for name, uses in (("a", "shared"), ("b", "shared"), ("c", "other")):
        kube_client.create(CONFIGMAPS, parent(name, secret=uses), ns)
    kube_client.create(SECRETS, secret("other"), ns)
    controller = MapsSecrets()
    with running(kube_client, ns, controller):
        wait_for(lambda: {f"{ns}/a", f"{ns}/b", f"{ns}/c"} <= set(controller.seen()),
                 timeout=30)
        controller.clear()
        kube_client.create(SECRETS, secret("shared"), ns)
        kube_client.patch(SECRETS, "other", {"stringData": {"v": "1"}}, ns)  # the marker
        wait_for(lambda: f"{ns}/c" in controller.seen(), timeout=30)
        assert sorted(set(controller.seen())) == [f"{ns}/a", f"{ns}/b", f"{ns}/c"]
        assert controller.lister_for(SECRETS).get("shared", namespace=ns) is not None


def deployment(name: str, replicas: int = 1) -> dict[str, Any]:
    labels = {"app": name}
    return {"metadata": {"name": name}, "spec": {
        "replicas": replicas, "selector": {"matchLabels": labels},
        "template": {"metadata": {"labels": labels},
                     "spec": {"containers": [{"name": "c", "image": "example/none"}]}}}}


class SpecOnly(Recording):
    resource = DEPLOYMENTS
    label_selector = None
    predicates = (generation_changed,)


def test_generation_changed_filters_status_only_updates(
        kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    kube_client.create(DEPLOYMENTS, deployment("status-only"), ns)
    kube_client.create(DEPLOYMENTS, deployment("marker"), ns)
    controller = SpecOnly()
    with running(kube_client, ns, controller):
        wait_for(lambda: len(set(controller.seen())) == 2, timeout=30)
        controller.clear()
        kube_client.patch(DEPLOYMENTS, "status-only", {"status": {"observedGeneration": 1}},
                          ns, subresource="status")
        kube_client.patch(DEPLOYMENTS, "status-only", {"metadata": {"labels": {"x": "y"}}}, ns)
        kube_client.patch(DEPLOYMENTS, "marker", {"spec": {"replicas": 2}}, ns)
        wait_for(lambda: f"{ns}/marker" in controller.seen(), timeout=30)
        assert controller.seen() == [f"{ns}/marker"]


class SlowSecrets:
    """Wraps a client: the first LIST/WATCH of Secrets blocks until ``release``."""

    def __init__(self, client: Client) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        for method in ("list", "watch"):
            original = getattr(client, method)

            def slow(resource: Any, *args: Any, _original: Any = original,
                     **kwargs: Any) -> Any:
                if resource == SECRETS:
                    self.entered.set()
                    self.gate.wait(60)
                return _original(resource, *args, **kwargs)
            setattr(client, method, slow)


def test_workers_wait_for_a_slow_secondary_cache(
        kube_control_plane: Any, kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    kube_client.create(CONFIGMAPS, parent("p"), ns)
    own = connect(kube_control_plane.kubeconfig)
    slow = SlowSecrets(own)
    controller = OwnsSecrets()
    try:
        with running(own, ns, controller, wait_ready=False) as mgr:
            assert slow.entered.wait(30)
            # The primary's handler has delivered its initial list ...
            wait_for(lambda: len(controller.queue) == 1, timeout=30, message="p queued")
            ready, why = mgr.ready()
            assert not ready and "ownssecrets" in why
            # ... and stays unreconciled while the secondary cache is empty.
            with pytest.raises(TimeoutError):
                wait_for(controller.seen, timeout=1.0)
            slow.gate.set()
            wait_for(lambda: controller.seen() == [f"{ns}/p"], timeout=30)
            wait_for(lambda: mgr.ready()[0], timeout=30)
    finally:
        slow.gate.set()
        own.close()


class NoSuchResource(Controller):
    resource = CONFIGMAPS
    watches = (Watch(Resource("example.com", "v1", "nothings", "Nothing"),
                     map_to=lambda obj: []),)


def test_sync_timeout_runs_on_the_injected_clock(kube_client: Client,
                                                  kube_namespace: str) -> None:
    from pycontroller.testing import FakeClock

    clock = FakeClock()
    mgr = Manager(kube_client, namespace=kube_namespace, registry=CollectorRegistry(),
                  metrics_bind_address=None, health_probe_bind_address=None,
                  handle_signals=False, sync_timeout=60.0, clock=clock)
    mgr.add(NoSuchResource())
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(mgr.run()),
                              name="pycontroller-test-manager")
    thread.start()
    try:
        wait_for(lambda: "nosuchresource" in mgr.ready()[1], timeout=30)
        assert clock.wait_for_waiters(timeout=30)  # the sync wait sleeps on our clock
        clock.step(61.0)
        # Shutdown waits on the same clock too (the event recorders' flush deadline).
        def returned() -> bool:
            clock.step(1.0)
            return bool(code)
        wait_for(returned, timeout=30, message="run() returned")
        assert code == [1]  # caches did not sync within 60 s of *this* clock
    finally:
        while thread.is_alive():
            clock.step(10.0)
            thread.join(0.1)
