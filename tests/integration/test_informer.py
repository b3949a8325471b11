"""Informers against the real kube-apiserver: what a user of the cache can observe."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from helpers import Recorder, cm, converged, recorded, retrying, server_state, timed_stop
from structlog.testing import capture_logs

from pycontroller._util._wait import wait_for
from pycontroller.cache._informer_factory import SharedInformerFactory, wait_for_cache_sync
from pycontroller.cache._shared_informer import SharedIndexInformer
from pycontroller.client import (
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    PODS,
    Client,
    ListWatch,
    WatchDecodeError,
    WatchEvent,
    resource_for,
)
from pycontroller.envtest import ControlPlane
from pycontroller.errors import NotFoundError
from pycontroller.testing._faults import FaultyListerWatcher

pytestmark = pytest.mark.integration


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def start(informer: SharedIndexInformer, stop: threading.Event) -> None:
    informer.start(stop)
    assert wait_for_cache_sync(stop, informer.has_synced, timeout=30)


def test_create_update_delete_reach_handler_and_cache(
    kube_client: Client, kube_namespace: str, stop: threading.Event
) -> None:
    factory = SharedInformerFactory(kube_client, namespace=kube_namespace)
    informer = factory.informer_for(CONFIGMAPS)
    rec = Recorder()
    reg = informer.add_event_handler(**rec.handlers())
    kube_client.create(CONFIGMAPS, cm("before"), kube_namespace)
    factory.start(stop)
    assert wait_for_cache_sync(stop, reg.has_synced, timeout=30)
    kube_client.create(CONFIGMAPS, cm("a"), kube_namespace)
    kube_client.patch(CONFIGMAPS, "a", {"data": {"v": "1"}}, kube_namespace)
    kube_client.delete(CONFIGMAPS, "a", kube_namespace)
    wait_for(lambda: ("delete", "a") in rec.events, timeout=15)
    assert [e for e in rec.events if e[1] == "a"] == [("add", "a"), ("update", "a"),
                                                      ("delete", "a")]
    assert rec.events[0] == ("add", "before")
    assert [o["metadata"]["name"] for o in informer.lister.list()] == ["before"]
    cached = informer.lister.get("before", namespace=kube_namespace)
    assert cached is not None and cached["kind"] == "ConfigMap"
    assert "managedFields" not in cached["metadata"]
    factory.shutdown(10)


def _churn(client: Client, namespace: str, count: int, seed: int) -> set[str]:
    """Create, update and delete ``count`` configmaps in parallel; return deleted names."""
    import random

    rnd = random.Random(seed)
    deleted: set[str] = set()
    lock = threading.Lock()

    def one(i: int) -> None:
        name = f"c{i}"
        retrying(client.create, CONFIGMAPS, cm(name), namespace)
        if rnd.random() < 0.5:
            retrying(client.patch, CONFIGMAPS, name, {"data": {"v": "x"}}, namespace)
        if rnd.random() < 0.3:
            retrying(client.delete, CONFIGMAPS, name, namespace)
            with lock:
                deleted.add(name)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(one, range(count)))
    return deleted


def test_churn_of_1000_objects_converges_to_a_fresh_list(
    kube_client: Client, kube_namespace: str, stop: threading.Event
) -> None:
    informer, rec = recorded(ListWatch(kube_client, CONFIGMAPS, kube_namespace))
    start(informer, stop)
    _churn(kube_client, kube_namespace, 1000, seed=1)
    converged(kube_client, kube_namespace, informer, rec)
    stop.set()
    informer.join(10)


def test_apiserver_restart_during_churn_loses_no_delete(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str,
    stop: threading.Event,
) -> None:
    informer, rec = recorded(ListWatch(kube_client, CONFIGMAPS, kube_namespace))
    start(informer, stop)
    worker = threading.Thread(target=lambda: _churn(kube_client, kube_namespace, 150, 2))
    worker.start()
    kube_envtest.restart_apiserver()
    worker.join(120)
    # Deletes made while the apiserver was away... plus the ones after: delete half now.
    for name in sorted(server_state(kube_client, kube_namespace))[::2]:
        retrying(kube_client.delete, CONFIGMAPS, name, kube_namespace)
    converged(kube_client, kube_namespace, informer, rec)
    stop.set()
    informer.join(10)


def test_compaction_while_watch_is_down_relists_and_delivers_deletes(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str,
    stop: threading.Event,
) -> None:
    for i in range(5):
        kube_client.create(CONFIGMAPS, cm(f"k{i}"), kube_namespace)
    faulty = FaultyListerWatcher(ListWatch(kube_client, CONFIGMAPS, kube_namespace))
    informer, rec = recorded(faulty)
    with capture_logs() as logs:
        start(informer, stop)
        kube_client.create(CONFIGMAPS, cm("seen"), kube_namespace)  # the watch is live
        wait_for(lambda: "seen" in rec.names(), timeout=15)
        faulty.down()
        kube_client.delete(CONFIGMAPS, "k1", kube_namespace)
        kube_client.delete(CONFIGMAPS, "k3", kube_namespace)
        kube_client.create(CONFIGMAPS, cm("new"), kube_namespace)
        kube_envtest.compact_etcd()
        faulty.up()
        converged(kube_client, kube_namespace, informer, rec)
    assert any(e["event"] == "watch_expired" for e in logs), [e["event"] for e in logs]
    assert sorted(rec.tombstones) == ["k1", "k3"]
    stop.set()
    informer.join(10)


def test_stalled_stream_is_rewatched_and_nothing_is_lost(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str,
    stop: threading.Event,
) -> None:
    informer, rec = recorded(ListWatch(kube_client, CONFIGMAPS, kube_namespace),
                             inactivity_timeout=2.0)
    with capture_logs() as logs:
        start(informer, stop)
        kube_client.create(CONFIGMAPS, cm("before"), kube_namespace)
        wait_for(lambda: "before" in rec.names(), timeout=15)
        kube_envtest.pause()
        try:
            wait_for(lambda: any(e["event"] == "watch_stalled" for e in logs), timeout=20,
                     message="the stall to be noticed")
        finally:
            kube_envtest.resume()
        kube_client.create(CONFIGMAPS, cm("after"), kube_namespace)
        converged(kube_client, kube_namespace, informer, rec)
    stop.set()
    informer.join(10)


def test_malformed_line_and_error_event_relist_without_loss(
    kube_client: Client, kube_namespace: str, stop: threading.Event
) -> None:
    faulty = FaultyListerWatcher(ListWatch(kube_client, CONFIGMAPS, kube_namespace))
    informer, rec = recorded(faulty)
    with capture_logs() as logs:

        def syncs() -> int:
            return sum(e["event"] in ("list_completed", "watch_list_completed") for e in logs)

        start(informer, stop)
        before = syncs()
        faulty.inject(WatchDecodeError("malformed watch line: b'{garbage'"))
        kube_client.create(CONFIGMAPS, cm("one"), kube_namespace)
        wait_for(lambda: syncs() > before, timeout=15, message="relist after bad line")
        before = syncs()
        faulty.inject(WatchEvent("ERROR", {"kind": "Status", "code": 500,
                                           "reason": "InternalError", "message": "boom"}))
        kube_client.create(CONFIGMAPS, cm("two"), kube_namespace)
        wait_for(lambda: syncs() > before, timeout=15, message="relist after ERROR")
        converged(kube_client, kube_namespace, informer, rec)
    events = {e["event"] for e in logs}
    assert {"watch_decode_failed", "watch_failed"} <= events
    stop.set()
    informer.join(10)


def test_slow_and_failing_handlers_do_not_hold_up_others(
    kube_client: Client, kube_namespace: str, stop: threading.Event
) -> None:
    informer = SharedIndexInformer(ListWatch(kube_client, CONFIGMAPS, kube_namespace),
                                   expected_kind="ConfigMap")
    gate = threading.Event()
    slow = informer.add_event_handler(on_add=lambda obj, initial: gate.wait(30))

    def failing(obj: Mapping[str, Any], initial: bool) -> None:
        raise RuntimeError("bug in a handler")

    informer.add_event_handler(on_add=failing)
    rec = Recorder()
    informer.add_event_handler(**rec.handlers())
    start(informer, stop)
    for i in range(10):
        kube_client.create(CONFIGMAPS, cm(f"s{i}"), kube_namespace)
    wait_for(lambda: len(rec.names()) == 10, timeout=15)
    assert slow.pending() >= 9
    gate.set()
    stop.set()
    informer.join(10)


def test_handler_added_after_sync_sees_every_object_once(
    kube_client: Client, kube_namespace: str, stop: threading.Event
) -> None:
    for i in range(30):
        kube_client.create(CONFIGMAPS, cm(f"o{i}"), kube_namespace)
    informer = SharedIndexInformer(ListWatch(kube_client, CONFIGMAPS, kube_namespace),
                                   expected_kind="ConfigMap")
    start(informer, stop)
    rec = Recorder()
    reg = informer.add_event_handler(**rec.handlers())
    assert wait_for_cache_sync(stop, reg.has_synced, timeout=15)
    adds = sorted(name for kind, name in rec.events if kind == "add")
    assert adds == sorted(f"o{i}" for i in range(30))
    stop.set()
    informer.join(10)


def test_namespace_and_selector_scoped_informers(
    kube_client: Client, kube_namespace: str, stop: threading.Event
) -> None:
    kube_client.create(CONFIGMAPS, cm("red", labels={"color": "red"}), kube_namespace)
    kube_client.create(CONFIGMAPS, cm("blue", labels={"color": "blue"}), kube_namespace)
    kube_client.create(CONFIGMAPS, cm(f"elsewhere-{uuid.uuid4().hex[:6]}",
                                      labels={"color": "red"}), "default")
    factory = SharedInformerFactory(kube_client)
    red = factory.informer_for(CONFIGMAPS, namespace=kube_namespace, label_selector="color=red")
    named = factory.informer_for(CONFIGMAPS, namespace=kube_namespace,
                                 field_selector="metadata.name=blue")
    assert factory.informer_for(CONFIGMAPS, namespace=kube_namespace,
                                label_selector="color=red") is red
    factory.start(stop)
    synced = factory.wait_for_cache_sync(stop, timeout=30)
    assert all(synced.values()) and len(synced) == 2
    assert [o["metadata"]["name"] for o in red.lister.list()] == ["red"]
    assert [o["metadata"]["name"] for o in named.lister.list()] == ["blue"]
    kube_client.patch(CONFIGMAPS, "blue", {"metadata": {"labels": {"color": "red"}}},
                      kube_namespace)
    wait_for(lambda: len(red.lister.list()) == 2, timeout=15)
    factory.shutdown(10)


WIDGET_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com", "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {
            "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}],
    },
}


def test_crd_informer_through_discovery(
    kube_client: Client, kube_namespace: str, stop: threading.Event
) -> None:
    try:
        kube_client.create(CUSTOM_RESOURCE_DEFINITIONS, WIDGET_CRD)
    except Exception as exc:  # already there from an earlier test run on this cluster
        if "AlreadyExists" not in str(exc):
            raise

    def discovered() -> Any:
        try:
            return resource_for(kube_client, "example.com/v1", "Widget")
        except NotFoundError:
            return None

    widgets = wait_for(discovered, timeout=30, message="CRD discovery")
    assert widgets.plural == "widgets" and widgets.namespaced
    factory = SharedInformerFactory(kube_client, namespace=kube_namespace)
    informer = factory.informer_for(widgets)
    factory.start(stop)
    assert factory.wait_for_cache_sync(stop, timeout=30)
    wait_for(lambda: _create_widget(kube_client, widgets, kube_namespace), timeout=30,
             message="widget creation")
    wait_for(lambda: len(informer.lister.list()) == 1, timeout=15)
    assert informer.lister.list()[0]["spec"] == {"size": 3}
    factory.shutdown(10)


def _create_widget(client: Client, widgets: Any, namespace: str) -> bool:
    try:
        client.create(widgets, {"apiVersion": "example.com/v1", "kind": "Widget",
                                "metadata": {"name": "w1"}, "spec": {"size": 3}}, namespace)
    except NotFoundError:
        return False  # the CRD's REST endpoint is not serving yet
    return True


def test_pods_informer_sees_kwok_status_updates(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str,
    stop: threading.Event,
) -> None:
    kube_envtest.create_node("kwok-informer")
    factory = SharedInformerFactory(kube_client, namespace=kube_namespace)
    pods = factory.informer_for(PODS)
    factory.start(stop)
    assert factory.wait_for_cache_sync(stop, timeout=30)
    kube_client.create(PODS, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                              "spec": {"nodeName": "kwok-informer",
                                       "containers": [{"name": "c", "image": "x"}]}},
                       kube_namespace)

    def running() -> bool:
        cached = pods.lister.get("p", namespace=kube_namespace)
        return cached is not None and cached.get("status", {}).get("phase") == "Running"

    wait_for(running, timeout=30)
    factory.shutdown(10)


def test_factory_shutdown_stops_every_informer_whatever_stop_event(
    kube_client: Client, kube_namespace: str
) -> None:
    """Issue 8 item 8: only the informers of the most recent stop event used to stop."""
    factory = SharedInformerFactory(kube_client, namespace=kube_namespace)
    first_stop, second_stop = threading.Event(), threading.Event()
    first = factory.informer_for(CONFIGMAPS)
    factory.start(first_stop)
    second = factory.informer_for(PODS)
    factory.start(second_stop)
    assert factory.wait_for_cache_sync(threading.Event(), timeout=30) == {
        first.name: True, second.name: True}
    factory.shutdown(10)
    for informer in (first, second):
        assert informer._thread is not None and not informer._thread.is_alive()
    assert not first_stop.is_set() and not second_stop.is_set()  # the callers' events
    late = factory.informer_for(CONFIGMAPS, label_selector="late=1")
    with capture_logs() as logs:
        factory.start(threading.Event())
    assert late._thread is None, "start() after shutdown() starts nothing"
    assert any(e["event"] == "informer_factory_shut_down" for e in logs)
    # No thread of the informers outlives shutdown (the caller's events are still unset).
    wait_for(lambda: not [t for t in threading.enumerate()
                          if t.name.startswith("pycontroller-informer")], timeout=5)


@pytest.mark.parametrize("use_watch_list", [True, False], ids=["watch-list", "list"])
def test_stop_is_prompt_while_the_apiserver_is_silent(
    kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str, use_watch_list: bool
) -> None:
    """Issue 8 items 5 and 6: stopping inside a WatchList or a LIST page that a silent
    server never answers used to wait for the request's deadline (30 s)."""
    import time

    informer = SharedIndexInformer(ListWatch(kube_client, CONFIGMAPS, kube_namespace),
                                   expected_kind="ConfigMap", use_watch_list=use_watch_list)
    stop = threading.Event()
    kube_envtest.pause()
    try:
        informer.start(stop)
        time.sleep(1.0)  # the first request is on its way and unanswered
        assert not informer.has_synced()
        latency = timed_stop(stop, informer.join, 10)
    finally:
        kube_envtest.resume()
    assert informer._thread is not None and not informer._thread.is_alive()
    assert latency < 1.0, f"stop took {latency:.2f}s"
