"""traffic-tuner against the real apiserver and a real Prometheus text endpoint served by
the test on 127.0.0.1, whose request rate the test drives."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Process, apply_manifests, event, free_port
from prometheus_client import CollectorRegistry

from examples.traffic_tuner import config as c
from examples.traffic_tuner.controller import TrafficTuner
from examples.traffic_tuner.demo import CounterServer, tuned_annotations
from pycontroller import CONFIGMAPS, SERVICES, Client, Manager, connect
from pycontroller.client import EVENTS_K8S_IO, SECRETS
from pycontroller.envtest import ControlPlane
from pycontroller.errors import ForbiddenError
from pycontroller.testing import wait_for

pytestmark = pytest.mark.e2e
MANIFESTS = Path(__file__).resolve().parents[2] / "examples" / "traffic_tuner" / "manifests"


@pytest.fixture
def server() -> Iterator[CounterServer]:
    s = CounterServer(rps=2)
    yield s
    s.close()


class Offset:
    """A monotonic clock the test can move forward."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.monotonic() + self.offset


def setup(client: Client, ns: str, server: CounterServer, **extra: str) -> None:
    client.create(CONFIGMAPS, {"metadata": {"name": "web-tuning"},
                               "data": {"mode": "quiet", "owner": "team-web"}}, ns)
    client.create(SERVICES, {
        "metadata": {"name": "web", "annotations": tuned_annotations(
            server.url, "web-tuning", **{c.INTERVAL: "0.2", c.MIN_SECONDS: "0", **extra})},
        "spec": {"ports": [{"port": 80}]}}, ns)


def data(client: Client, ns: str) -> dict[str, str]:
    result: dict[str, str] = client.get(CONFIGMAPS, "web-tuning", ns).get("data") or {}
    return result


def polls(server: CounterServer, n: int) -> None:
    """Barrier: the tuner has scraped ``n`` more times."""
    target = server.requests + n
    wait_for(lambda: server.requests >= target, timeout=60, message=f"{n} more scrapes")


def tuned(client: Client, ns: str) -> list[Any]:
    return [e for e in client.list_all(EVENTS_K8S_IO, ns)
            if e.get("reason") == "Tuned" and e["regarding"]["name"] == "web"]


@pytest.fixture
def tuner(kube_manager: Callable[..., Manager]) -> Callable[..., TrafficTuner]:
    def start(**options: Any) -> TrafficTuner:
        t = TrafficTuner(**options)
        kube_manager(t, registry=CollectorRegistry())
        return t
    return start


def test_configmap_follows_the_rate_with_hysteresis_and_keeps_human_edits(
    tuner: Callable[..., TrafficTuner], server: CounterServer, kube_client: Client,
    kube_namespace: str,
) -> None:
    # down below 6 rps; 0.5 s polls keep timing jitter of the rate well inside the band
    setup(kube_client, kube_namespace, server, **{c.BAND: "0.4", c.INTERVAL: "0.5"})
    tuner()
    polls(server, 4)
    rv = kube_client.get(CONFIGMAPS, "web-tuning", kube_namespace)["metadata"][
        "resourceVersion"]
    assert data(kube_client, kube_namespace)["mode"] == "quiet"
    server.set_rps(40)
    wait_for(lambda: data(kube_client, kube_namespace)["mode"] == "busy", timeout=60,
             message="busy above the threshold")
    event_ = wait_for(lambda: tuned(kube_client, kube_namespace), timeout=30, message="Event")
    assert "set to the high value" in event_[0]["note"]
    # A person edits another key, and adds one: the tuner's writes leave them alone.
    kube_client.patch(CONFIGMAPS, "web-tuning", {"data": {"owner": "team-b", "extra": "1"}},
                      kube_namespace)
    server.set_rps(8)  # below the threshold, above threshold * (1 - band): stays busy
    polls(server, 8)
    assert data(kube_client, kube_namespace)["mode"] == "busy"
    server.set_rps(1)
    wait_for(lambda: data(kube_client, kube_namespace)["mode"] == "quiet", timeout=60,
             message="quiet below the band")
    assert data(kube_client, kube_namespace) == {"mode": "quiet", "owner": "team-b",
                                                 "extra": "1"}
    cm = kube_client.get(CONFIGMAPS, "web-tuning", kube_namespace)
    assert cm["metadata"]["resourceVersion"] != rv
    mine = [m for m in cm["metadata"]["managedFields"] if m["manager"] == "traffic-tuner"]
    assert mine and mine[0]["operation"] == "Apply"
    assert mine[0]["fieldsV1"] == {"f:data": {"f:mode": {}}}  # one key, nothing else
    # Steady: polling goes on, the ConfigMap is written only on a change.
    rv = cm["metadata"]["resourceVersion"]
    polls(server, 5)
    assert kube_client.get(CONFIGMAPS, "web-tuning", kube_namespace)["metadata"][
        "resourceVersion"] == rv


def test_minimum_time_in_state(
    tuner: Callable[..., TrafficTuner], server: CounterServer, kube_client: Client,
    kube_namespace: str,
) -> None:
    clock = Offset()
    setup(kube_client, kube_namespace, server, **{c.MIN_SECONDS: "1000"})
    tuner(clock=clock)
    polls(server, 2)
    clock.offset += 1000  # the first state (from the ConfigMap) has lasted long enough
    server.set_rps(40)
    wait_for(lambda: data(kube_client, kube_namespace)["mode"] == "busy", timeout=60,
             message="busy")
    server.set_rps(0)
    polls(server, 8)
    assert data(kube_client, kube_namespace)["mode"] == "busy"  # < 1000 s in state
    clock.offset += 1000
    wait_for(lambda: data(kube_client, kube_namespace)["mode"] == "quiet", timeout=60,
             message="quiet once the minimum time passed")


@pytest.mark.parametrize("mode", ["error", "garbage", "slow", "refused"])
def test_a_broken_endpoint_changes_nothing_and_is_retried_with_backoff(
    mode: str, tuner: Callable[..., TrafficTuner], server: CounterServer,
    kube_client: Client, kube_namespace: str,
) -> None:
    setup(kube_client, kube_namespace, server)
    tuner(scrape_timeout=0.5)
    polls(server, 3)
    rv = kube_client.get(CONFIGMAPS, "web-tuning", kube_namespace)["metadata"][
        "resourceVersion"]
    if mode == "refused":  # nothing listens there any more
        kube_client.patch(SERVICES, "web", {"metadata": {"annotations": {
            c.METRICS_URL: f"http://127.0.0.1:{free_port()}/metrics"}}}, kube_namespace)
        warned = wait_for(lambda: [
            e for e in kube_client.list_all(EVENTS_K8S_IO, kube_namespace)
            if e.get("reason") == "ScrapeFailed"], timeout=60, message="ScrapeFailed")
        assert "unreachable" in warned[0]["note"]
    else:
        server.mode = mode
        server.set_rps(100)  # would be "busy", if it could be read
        polls(server, 4)
        times = list(server.times)[-4:]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert gaps[-1] > gaps[0] * 1.5, gaps  # backoff: the retries slow down
    assert kube_client.get(CONFIGMAPS, "web-tuning", kube_namespace)["metadata"][
        "resourceVersion"] == rv
    assert data(kube_client, kube_namespace)["mode"] == "quiet"
    if mode != "refused":  # recovered: it tunes again
        server.mode = "ok"
        server.release.set()
        wait_for(lambda: data(kube_client, kube_namespace)["mode"] == "busy", timeout=120,
                 message="busy after recovery")


def test_invalid_annotations_are_reported_and_change_nothing(
    tuner: Callable[..., TrafficTuner], server: CounterServer, kube_client: Client,
    kube_namespace: str,
) -> None:
    setup(kube_client, kube_namespace, server, **{c.METRICS_URL: "file:///etc/passwd"})
    server.set_rps(100)
    tuner()
    warned = wait_for(lambda: [e for e in kube_client.list_all(EVENTS_K8S_IO, kube_namespace)
                               if e.get("reason") == "InvalidConfiguration"], timeout=60,
                      message="InvalidConfiguration")
    assert "http://" in warned[0]["note"]
    assert server.requests == 0
    # Fixing the annotation starts the tuning.
    kube_client.patch(SERVICES, "web", {"metadata": {"annotations": {
        c.METRICS_URL: server.url}}}, kube_namespace)
    wait_for(lambda: data(kube_client, kube_namespace)["mode"] == "busy", timeout=60,
             message="busy once configured")


def test_manifests_rbac_is_enough_and_no_more(
    kube_client: Client, kube_envtest: ControlPlane, kube_namespace: str,
    server: CounterServer,
) -> None:
    apply_manifests(kube_client, MANIFESTS)
    kubeconfig = kube_envtest.service_account_kubeconfig("traffic-tuner", "traffic-tuner")
    sa = connect(kubeconfig)
    with pytest.raises(ForbiddenError):
        sa.list(SECRETS, kube_namespace)
    with pytest.raises(ForbiddenError):  # patch, but not delete
        sa.delete(CONFIGMAPS, "web-tuning", kube_namespace)
    setup(kube_client, kube_namespace, server)
    server.set_rps(50)
    proc = Process(["--kubeconfig", str(kubeconfig), "--namespace", kube_namespace,
                    "--metrics-bind-address", f"127.0.0.1:{free_port()}",
                    "--health-probe-bind-address", f"127.0.0.1:{free_port()}"],
                   module="examples.traffic_tuner")
    try:
        proc.wait_for(event("configmap_tuned", state="high"), timeout=90,
                      what="a write as the SA")
        wait_for(lambda: tuned(kube_client, kube_namespace), timeout=30, message="Event")
    finally:
        assert proc.stop() == 0
    assert data(kube_client, kube_namespace)["mode"] == "busy"
    assert not [line for line in proc.lines if line.get("level") == "error"], proc.raw[-20:]
