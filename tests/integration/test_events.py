"""EventRecorder against the real apiserver: series, flood bounds, a caller that never waits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pycontroller import CONFIGMAPS, NAMESPACES, Client, EventRecorder
from pycontroller.client import EVENTS_K8S_IO, Write
from pycontroller.metrics import PrometheusMetricsProvider

pytestmark = pytest.mark.integration
COMPONENT = "toolkit-test"


def wait_until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def our_events(client: Client, namespace: str) -> list[dict[str, Any]]:
    items = client.list(EVENTS_K8S_IO, namespace)["items"]
    return [e for e in items if e.get("reportingController") == COMPONENT]


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"component": COMPONENT, **labels}) or 0.0


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def recorders(kube_client: Client, registry: CollectorRegistry
              ) -> Iterator[Callable[..., EventRecorder]]:
    made: list[EventRecorder] = []

    def make(client: Client | None = None, **kwargs: Any) -> EventRecorder:
        rec = EventRecorder(client or kube_client, COMPONENT, instance="test-instance",
                            metrics=PrometheusMetricsProvider(registry=registry), **kwargs)
        made.append(rec)
        rec.start()
        return rec

    yield make
    for rec in made:
        rec.stop(timeout=10)


def test_fifty_identical_warnings_are_one_event_with_a_series(
        kube_client: Client, kube_namespace: str,
        recorders: Callable[..., EventRecorder], registry: CollectorRegistry) -> None:
    cm = kube_client.create(CONFIGMAPS, {"metadata": {"name": "crashy"}}, kube_namespace)
    rec = recorders()
    for _ in range(50):
        rec.warning(cm, "BackOff", "back-off restarting failed container", action="Restart")

    def counted() -> bool:
        events = our_events(kube_client, kube_namespace)
        return len(events) == 1 and (events[0].get("series") or {}).get("count") == 50

    wait_until(counted)
    (event,) = our_events(kube_client, kube_namespace)
    assert event["regarding"]["uid"] == cm["metadata"]["uid"]
    assert event["regarding"]["kind"] == "ConfigMap"
    assert (event["type"], event["reason"], event["action"]) == ("Warning", "BackOff",
                                                                 "Restart")
    assert event["note"] == "back-off restarting failed container"
    assert event["reportingInstance"] == "test-instance"
    assert event["series"]["lastObservedTime"] >= event["eventTime"]
    writes = (metric(registry, "event_recorder_writes_total", verb="create")
              + metric(registry, "event_recorder_writes_total", verb="patch"))
    assert writes <= 25  # far fewer writes than observations


def test_a_flood_about_one_object_is_bounded_by_its_token_bucket(
        kube_client: Client, kube_namespace: str,
        recorders: Callable[..., EventRecorder], registry: CollectorRegistry) -> None:
    cm = kube_client.create(CONFIGMAPS, {"metadata": {"name": "flood"}}, kube_namespace)
    calm = kube_client.create(CONFIGMAPS, {"metadata": {"name": "calm"}}, kube_namespace)
    rec = recorders()
    for i in range(200):  # a crash loop with a different message each time
        rec.warning(cm, "Failed", f"attempt {i} failed")
    rec.normal(calm, "Synced", "fine")  # another object is not throttled

    def settled() -> bool:
        return metric(registry, "event_recorder_dropped_events_total",
                      reason="rate_limited") == 175

    wait_until(settled)
    wait_until(lambda: len(our_events(kube_client, kube_namespace)) == 26)
    events = our_events(kube_client, kube_namespace)
    assert sum(e["regarding"]["name"] == "flood" for e in events) == 25
    assert [e["reason"] for e in events if e["regarding"]["name"] == "calm"] == ["Synced"]


def test_cluster_scoped_objects_get_events_in_default(
        kube_client: Client, recorders: Callable[..., EventRecorder]) -> None:
    ns = kube_client.create(NAMESPACES, {"metadata": {"generateName": "evt-"}})
    try:
        rec = recorders()
        rec.normal(ns, "Observed", "a namespace")

        def found() -> bool:
            return any(e["regarding"].get("uid") == ns["metadata"]["uid"]
                       for e in our_events(kube_client, "default"))

        wait_until(found)
    finally:
        kube_client.delete(NAMESPACES, ns["metadata"]["name"])


def test_the_caller_never_waits_for_a_stuck_api_server(
        kube_client: Client, kube_namespace: str,
        recorders: Callable[..., EventRecorder], registry: CollectorRegistry) -> None:
    cm = kube_client.create(CONFIGMAPS, {"metadata": {"name": "busy"}}, kube_namespace)
    gate = threading.Event()
    in_write = threading.Event()

    def stuck(write: Write) -> None:  # the worker hangs inside its first write
        in_write.set()
        assert gate.wait(30)

    rec = recorders(kube_client.with_write_observer(stuck), buffer_size=20)
    try:
        rec.normal(cm, "First", "written, then the worker hangs")
        assert in_write.wait(30)
        started = time.monotonic()
        for i in range(2000):
            rec.normal(cm, "Step", f"step {i}")
        elapsed = time.monotonic() - started
    finally:
        gate.set()
    assert elapsed < 5.0, f"2000 calls took {elapsed:.2f}s"
    assert metric(registry, "event_recorder_dropped_events_total",
                  reason="buffer_full") == 2000 - 20
    rec.stop(timeout=20)
    events = our_events(kube_client, kube_namespace)
    assert len(events) == 21  # the first and the buffered 20 (within the burst of 25)


@pytest.mark.parametrize("namespace", ["a/b", "..", "ns%2F", 7])
def test_an_object_whose_namespace_cannot_be_a_path_is_refused_at_the_call(
        kube_client: Client, kube_namespace: str, recorders: Callable[..., EventRecorder],
        registry: CollectorRegistry, namespace: Any) -> None:
    """The namespace becomes part of the Event's URL: refused at once, so it never
    reaches the worker (where it would fail every write attempt, over and over)."""
    from structlog.testing import capture_logs

    rec = recorders()
    bad = {"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "x", "namespace": namespace}}
    with capture_logs() as logs:
        with pytest.raises(ValueError, match="namespace"):
            rec.normal(bad, "Tested", "bad namespace")
        cm = kube_client.create(CONFIGMAPS, {"metadata": {"name": "ok"}}, kube_namespace)
        rec.normal(cm, "Tested", "good one")
        wait_until(lambda: len(our_events(kube_client, kube_namespace)) == 1)
        rec.stop(timeout=10)
    assert not [e for e in logs if e["event"] == "event_recorder_failed"]
