"""restart-scaler against the real control plane: kwok runs the Pods, the test plays the
deployment controller (ReplicaSet + Pods with controller ownerReferences) and raises
restart counts through the Pod status subresource."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import Process, apply_manifests, event, free_port
from prometheus_client import CollectorRegistry

from examples.restart_scaler.controller import (
    HANDLED,
    LAST_SCALE_UP,
    MAX_REPLICAS,
    RestartScaler,
)
from examples.restart_scaler.demo import owner
from pycontroller import (
    DEPLOYMENTS,
    PODS,
    Client,
    EventRecorder,
    Lister,
    Manager,
    Requeue,
    connect,
)
from pycontroller.cache import ThreadSafeStore
from pycontroller.client import EVENTS_K8S_IO, REPLICASETS, SECRETS
from pycontroller.envtest import ControlPlane
from pycontroller.errors import ForbiddenError
from pycontroller.testing import run_manager, wait_for

pytestmark = pytest.mark.e2e
NODE = "kwok-restart-scaler"
LABELS = {"app": "crashy"}
MANIFESTS = Path(__file__).resolve().parents[2] / "examples" / "restart_scaler" / "manifests"


@pytest.fixture
def node(kube_envtest: ControlPlane) -> str:
    kube_envtest.create_node(NODE)
    return NODE


class Workload:
    """A Deployment, its ReplicaSet and Pods, as the deployment controller would make them."""

    def __init__(self, client: Client, plane: ControlPlane, namespace: str, node: str,
                 *, replicas: int = 1, annotations: dict[str, str] | None = None) -> None:
        self.client, self.plane, self.ns, self.node = client, plane, namespace, node
        self.name = f"web-{uuid.uuid4().hex[:6]}"
        self.dep = client.create(DEPLOYMENTS, {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": self.name, "annotations": annotations or {}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": LABELS},
                     "template": {"metadata": {"labels": LABELS},
                                  "spec": {"containers": [{"name": "main", "image": "x"}]}}}},
            namespace)
        self.rs = client.create(REPLICASETS, {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{self.name}-1", "labels": LABELS,
                         "ownerReferences": [owner(self.dep)]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": LABELS},
                     "template": self.dep["spec"]["template"]}}, namespace)
        self.pods = 0

    def pod(self, refs: list[dict[str, Any]] | None = None) -> str:
        """A new Pod of the ReplicaSet (or with ``refs``), once kwok runs it."""
        self.pods += 1
        name = f"{self.name}-p{self.pods}"
        refs = [owner(self.rs)] if refs is None else refs
        self.client.create(PODS, {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": LABELS, "ownerReferences": refs},
            "spec": {"nodeName": self.node, "containers": [{"name": "main", "image": "x"}]}},
            self.ns)
        wait_for(lambda: (self.client.get(PODS, name, self.ns).get("status") or {}).get(
            "containerStatuses"), timeout=60, message=f"kwok runs {name}")
        return name

    def crash(self, pod: str, times: int = 1) -> int:
        count = 0
        for _ in range(times):
            count = self.plane.restart_container(self.ns, pod)
        return count

    def replicas(self) -> int:
        return int(self.client.get(DEPLOYMENTS, self.name, self.ns)["spec"]["replicas"])

    def deployment(self) -> Any:
        return self.client.get(DEPLOYMENTS, self.name, self.ns)

    def events(self, reason: str) -> list[Any]:
        return [e for e in self.client.list_all(EVENTS_K8S_IO, self.ns)
                if e.get("reason") == reason and e["regarding"]["name"] == self.name]


class Scaler:
    """A Manager running a RestartScaler, with its metrics to wait on."""

    def __init__(self, client: Client, namespace: str, **options: Any) -> None:
        self.registry = CollectorRegistry()
        self.controller = RestartScaler(**options)
        self.manager = Manager(client, namespace=namespace, registry=self.registry,
                               metrics_bind_address=None, health_probe_bind_address=None,
                               handle_signals=False)
        self.manager.add(self.controller)

    def reconciles(self) -> float:
        return sum(self.registry.get_sample_value(
            "controller_runtime_reconcile_total",
            {"controller": "restart-scaler", "result": result}) or 0.0
            for result in ("success", "requeue", "requeue_after", "error"))

    def errors(self) -> float:
        return (self.registry.get_sample_value(
            "controller_runtime_reconcile_errors_total", {"controller": "restart-scaler"})
            or 0.0)

    def settle(self, before: float, more: int = 1) -> None:
        """Wait until at least ``more`` reconciles ran since ``before`` (a barrier: the
        scaler has seen what the test just did)."""
        wait_for(lambda: self.reconciles() >= before + more, timeout=60,
                 message="the scaler reconciled")


@pytest.fixture
def scaler(kube_client: Client, kube_namespace: str) -> Iterator[Callable[..., Scaler]]:
    with contextlib.ExitStack() as stack:
        def start(**options: Any) -> Scaler:
            s = Scaler(kube_client, kube_namespace, **options)
            stack.enter_context(run_manager(s.manager))
            return s
        yield start


def test_scales_up_once_per_episode_with_an_event_and_not_again_after_a_restart(
    kube_client: Client, kube_envtest: ControlPlane, kube_namespace: str, node: str,
) -> None:
    w = Workload(kube_client, kube_envtest, kube_namespace, node)
    pod = w.pod()
    first = Scaler(kube_client, kube_namespace, threshold=3, cooldown=0)
    with run_manager(first.manager):
        before = first.reconciles()
        w.crash(pod, 2)  # below the threshold: nothing
        first.settle(before, 2)
        assert w.replicas() == 1
        w.crash(pod)
        wait_for(lambda: w.replicas() == 2, timeout=60, message="scaled to 2")
        events = wait_for(lambda: w.events("ScaledUp"), timeout=30, message="the Event")
        assert "restarted 3 times" in events[0]["note"]
        assert "replicas 1 -> 2" in events[0]["note"]
        assert events[0]["regarding"]["kind"] == "Deployment"
        annotations = w.deployment()["metadata"]["annotations"]
        uid = kube_client.get(PODS, pod, kube_namespace)["metadata"]["uid"]
        assert annotations[HANDLED] == f"{uid}=3"
        assert LAST_SCALE_UP in annotations
        before = first.reconciles()
        w.crash(pod)  # the same episode goes on: no second scale-up
        first.settle(before)
        assert w.replicas() == 2
    # A new process with no memory: the episode is recorded on the Deployment.
    second = Scaler(kube_client, kube_namespace, threshold=3, cooldown=0)
    with run_manager(second.manager):
        second.settle(0)  # the initial list reconciled the pod
        before = second.reconciles()
        w.crash(pod)
        second.settle(before)
        assert w.replicas() == 2
        assert second.errors() == 0
    # the server-side apply owns spec.replicas under the scaler's field manager
    managers = {m["manager"] for m in w.deployment()["metadata"]["managedFields"]}
    assert "restart-scaler" in managers


def test_refuses_at_the_cap_and_follows_a_raised_cap(
    scaler: Callable[..., Scaler], kube_client: Client, kube_envtest: ControlPlane,
    kube_namespace: str, node: str,
) -> None:
    w = Workload(kube_client, kube_envtest, kube_namespace, node, replicas=2,
                 annotations={MAX_REPLICAS: "2"})
    pod = w.pod()
    s = scaler(threshold=2, cooldown=0)
    w.crash(pod, 2)
    refused = wait_for(lambda: w.events("ScaleUpRefused"), timeout=60, message="refusal")
    assert refused[0]["type"] == "Warning"
    assert "cap of 2 replicas" in refused[0]["note"]
    assert w.replicas() == 2
    # Raising the cap re-examines the Deployment's pods (Deployment -> RS -> Pod indexes).
    kube_client.patch(DEPLOYMENTS, w.name, {"metadata": {"annotations": {MAX_REPLICAS: "3"}}},
                      kube_namespace)
    wait_for(lambda: w.replicas() == 3, timeout=60, message="scaled under the raised cap")
    # The default cap (max_replicas) holds too, for Deployments without the annotation.
    w2 = Workload(kube_client, kube_envtest, kube_namespace, node, replicas=10)
    before = s.reconciles()
    w2.crash(w2.pod(), 2)
    wait_for(lambda: w2.events("ScaleUpRefused"), timeout=60, message="refusal at default")
    s.settle(before)
    assert w2.replicas() == 10
    assert s.errors() == 0


@pytest.mark.parametrize("cap", ["\u00b2", "9" * 5000, "-1", "2.5", "0", "lots"])
def test_a_garbage_cap_is_reported_not_fatal(
    scaler: Callable[..., Scaler], kube_client: Client, kube_envtest: ControlPlane,
    kube_namespace: str, node: str, *, cap: str,
) -> None:
    # "\u00b2" (superscript two) passes str.isdigit() but not int(); 5000 digits exceed
    # Python's int() digit limit: both raised in every reconcile, without an Event.
    w = Workload(kube_client, kube_envtest, kube_namespace, node,
                 annotations={MAX_REPLICAS: cap})
    pod = w.pod()
    s = scaler(threshold=1, cooldown=0)
    w.crash(pod)
    invalid = wait_for(lambda: w.events("InvalidMaxReplicas"), timeout=60,
                       message="InvalidMaxReplicas Event")
    assert invalid[0]["type"] == "Warning" and "1-100000" in invalid[0]["note"]
    assert w.replicas() == 1
    assert s.errors() == 0


def test_cooldown_holds_between_episodes(
    scaler: Callable[..., Scaler], kube_client: Client, kube_envtest: ControlPlane,
    kube_namespace: str, node: str,
) -> None:
    clock = [1_900_000_000.0]
    w = Workload(kube_client, kube_envtest, kube_namespace, node)
    a, b = w.pod(), w.pod()
    s = scaler(threshold=1, cooldown=300, now=lambda: clock[0])
    w.crash(a)
    wait_for(lambda: w.replicas() == 2, timeout=60, message="first scale-up")
    clock[0] += 299  # another episode inside the cool-down: no scale-up
    before = s.reconciles()
    w.crash(b)
    s.settle(before)
    assert w.replicas() == 2
    clock[0] += 2  # past the cool-down: the next restart of b scales (a is handled)
    w.crash(b)
    wait_for(lambda: w.replicas() == 3, timeout=60, message="second scale-up")
    before = s.reconciles()
    w.crash(a)
    s.settle(before)
    assert w.replicas() == 3
    assert s.errors() == 0


def test_a_last_scale_up_in_the_future_does_not_block_for_years(
    scaler: Callable[..., Scaler], kube_client: Client, kube_envtest: ControlPlane,
    kube_namespace: str, node: str,
) -> None:
    """A hand-edited (or skewed-clock) last-scale-up far ahead of now is not trusted: it
    would otherwise postpone every scale-up of the Deployment until that date."""
    w = Workload(kube_client, kube_envtest, kube_namespace, node,
                 annotations={LAST_SCALE_UP: "2099-01-01T00:00:00Z"})
    pod = w.pod()
    s = scaler(threshold=1, cooldown=300)
    w.crash(pod)
    wait_for(lambda: w.replicas() == 2, timeout=60, message="scaled despite the stamp")
    assert w.deployment()["metadata"]["annotations"][LAST_SCALE_UP] < "2099"
    assert s.errors() == 0


def test_live_pods_stay_recorded_however_many_gone_pods_were_handled(
    kube_client: Client, kube_envtest: ControlPlane, kube_namespace: str, node: str,
) -> None:
    """The record keeps the last 20 episodes: gone pods make way first, or a pod that
    still crash-loops drops out of it and scales the Deployment again."""
    w = Workload(kube_client, kube_envtest, kube_namespace, node)
    old, new = w.pod(), w.pod()
    w.crash(old)
    w.crash(new)
    old_pod, new_pod = (kube_client.get(PODS, p, kube_namespace) for p in (old, new))
    gone = [f"{uuid.uuid4()}=5" for _ in range(19)]  # pods replaced long ago
    dep = kube_client.patch(DEPLOYMENTS, w.name, {"metadata": {"annotations": {
        HANDLED: ",".join([f"{old_pod['metadata']['uid']}=3", *gone])}}}, kube_namespace)
    objects = {PODS: [old_pod, new_pod], REPLICASETS: [w.rs], DEPLOYMENTS: [dep]}
    assert bound_scaler(kube_client, objects).reconcile(f"{kube_namespace}/{new}") is None
    assert w.replicas() == 2
    handled = w.deployment()["metadata"]["annotations"][HANDLED]
    assert old_pod["metadata"]["uid"] in handled  # still crash-looping: still handled
    assert new_pod["metadata"]["uid"] in handled


def test_terminating_pods_and_deployments_scaled_to_zero_are_left_alone(
    scaler: Callable[..., Scaler], kube_client: Client, kube_envtest: ControlPlane,
    kube_namespace: str, node: str,
) -> None:
    """`kubectl scale --replicas=0` is how one stops a broken app: the Pods it is
    terminating must not scale it back up, nor may any Pod of a Deployment at 0."""
    w = Workload(kube_client, kube_envtest, kube_namespace, node)
    pod = w.pod()
    kube_client.patch(PODS, pod, {"metadata": {"finalizers": ["test.pycontroller.dev/hold"]}},
                      kube_namespace)
    s = scaler(threshold=2, cooldown=0)
    try:
        w.crash(pod)
        kube_client.delete(PODS, pod, kube_namespace)  # terminating, held by the finalizer
        wait_for(lambda: kube_client.get(PODS, pod, kube_namespace)["metadata"].get(
            "deletionTimestamp"), timeout=30, message="terminating")
        before = s.reconciles()
        w.crash(pod)  # reaches the threshold while terminating
        s.settle(before)
        assert w.replicas() == 1
        # The Deployment scaled to zero; a Pod of it still crashes (its last moments).
        kube_client.patch(DEPLOYMENTS, w.name, {"spec": {"replicas": 0}}, kube_namespace)
        other = w.pod()
        before = s.reconciles()
        w.crash(other, 2)
        s.settle(before, 2)
        assert w.replicas() == 0
        assert s.errors() == 0
    finally:
        kube_client.patch(PODS, pod, {"metadata": {"finalizers": None}}, kube_namespace)


def test_pods_without_a_deployment_are_logged_not_fatal(
    scaler: Callable[..., Scaler], kube_client: Client, kube_envtest: ControlPlane,
    kube_namespace: str, node: str,
) -> None:
    w = Workload(kube_client, kube_envtest, kube_namespace, node)
    s = scaler(threshold=1, cooldown=0)
    orphan = w.pod(refs=[])
    missing_rs = w.pod(refs=[{**owner(w.rs), "name": "gone", "uid": str(uuid.uuid4())}])
    before = s.reconciles()
    w.crash(orphan)
    w.crash(missing_rs)
    s.settle(before, 2)
    assert w.replicas() == 1
    assert s.errors() == 0
    assert s.manager.healthy()[0]


def bound_scaler(client: Client, objects: dict[Any, list[Any]]) -> RestartScaler:
    """A scaler bound to caches the test fills (stale on purpose)."""
    listers = {}
    for resource in (PODS, REPLICASETS, DEPLOYMENTS):
        store: ThreadSafeStore[Any] = ThreadSafeStore(
            indexers=RestartScaler.indexers.get(resource))
        for obj in objects.get(resource, []):
            store.add(obj)
        listers[resource] = Lister(store)
    s = RestartScaler(threshold=1, cooldown=0)
    s.bind(client=client, listers=listers, events=EventRecorder(client, "restart-scaler"))
    return s


def test_deleted_deployment_and_conflicts_are_handled(
    kube_client: Client, kube_envtest: ControlPlane, kube_namespace: str, node: str,
) -> None:
    w = Workload(kube_client, kube_envtest, kube_namespace, node)
    pod = w.pod()
    w.crash(pod)
    objects = {PODS: [kube_client.get(PODS, pod, kube_namespace)],
               REPLICASETS: [w.rs], DEPLOYMENTS: [w.dep]}
    # The cache still shows the Deployment, the server has a newer version: 409, retried.
    kube_client.patch(DEPLOYMENTS, w.name, {"metadata": {"labels": {"touched": "yes"}}},
                      kube_namespace)
    key = f"{kube_namespace}/{pod}"
    result = bound_scaler(kube_client, objects).reconcile(key)
    assert result is not None and result.after is None  # Requeue() with backoff
    assert w.replicas() == 1
    # Deleted meanwhile: the apply must not re-create it.
    kube_client.delete(DEPLOYMENTS, w.name, kube_namespace)
    assert bound_scaler(kube_client, objects).reconcile(key) in (None, Requeue())
    assert w.name not in {d["metadata"]["name"]
                          for d in kube_client.list_all(DEPLOYMENTS, kube_namespace)}


# -- the manifests: least privilege, proven by running as the ServiceAccount ---------------
def test_manifests_rbac_is_enough_and_no_more(
    kube_client: Client, kube_envtest: ControlPlane, kube_namespace: str, node: str,
) -> None:
    apply_manifests(kube_client, MANIFESTS)
    kubeconfig = kube_envtest.service_account_kubeconfig("restart-scaler", "restart-scaler")
    sa = connect(kubeconfig)
    with pytest.raises(ForbiddenError):
        sa.list(SECRETS, kube_namespace)
    with pytest.raises(ForbiddenError):  # patch, but not delete
        sa.delete(DEPLOYMENTS, "anything", kube_namespace)
    w = Workload(kube_client, kube_envtest, kube_namespace, node)
    pod = w.pod()
    metrics, probes = free_port(), free_port()
    proc = Process(["--kubeconfig", str(kubeconfig), "--namespace", kube_namespace,
                    "--threshold", "2", "--cooldown", "0", "--leader-elect",
                    "--leader-election-namespace", "restart-scaler",
                    "--metrics-bind-address", f"127.0.0.1:{metrics}",
                    "--health-probe-bind-address", f"127.0.0.1:{probes}"],
                   module="examples.restart_scaler")
    try:
        proc.wait_for(event("controllers_started"), timeout=90, what="start as the SA")
        w.crash(pod, 2)
        proc.wait_for(event("scaled_up", replicas=2), timeout=60, what="a scale-up as the SA")
        wait_for(lambda: w.events("ScaledUp"), timeout=30, message="the SA's Event")
        assert w.replicas() == 2
    finally:
        assert proc.stop() == 0
    assert not [line for line in proc.lines if line.get("level") == "error"], proc.raw[-20:]
