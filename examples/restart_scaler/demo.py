"""The ``--local`` workload: a Deployment whose Pod keeps crashing.

There is no kube-controller-manager in the local control plane, so the demo plays its
part: it creates the ReplicaSet and Pods (with controller ownerReferences) itself, and
makes kwok report container restarts through the Pod's status subresource.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Any

from pycontroller import DEPLOYMENTS, NAMESPACES, PODS
from pycontroller.cli import LocalCluster
from pycontroller.client import REPLICASETS
from pycontroller.errors import ConflictError, Error

NAMESPACE = "demo"
LABELS = {"app": "crashy"}


def workload(cluster: LocalCluster, namespace: str, name: str = "crashy",
             ) -> tuple[dict[str, Any], dict[str, Any]]:
    """Create a Deployment and its ReplicaSet (as the deployment controller would)."""
    client = cluster.client
    dep = client.create(DEPLOYMENTS, {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
        "spec": {"replicas": 1, "selector": {"matchLabels": LABELS},
                 "template": {"metadata": {"labels": LABELS},
                              "spec": {"containers": [{"name": "main",
                                                       "image": "example/crashy:1"}]}}}},
        namespace)
    rs = client.create(REPLICASETS, {
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": f"{name}-5d4f", "labels": LABELS, "ownerReferences": [owner(dep)]},
        "spec": {"replicas": 1, "selector": {"matchLabels": LABELS},
                 "template": dep["spec"]["template"]}}, namespace)
    return dep, rs


def owner(obj: dict[str, Any]) -> dict[str, Any]:
    """A controller ownerReference to ``obj``."""
    return {"apiVersion": obj["apiVersion"], "kind": obj["kind"],
            "name": obj["metadata"]["name"], "uid": obj["metadata"]["uid"],
            "controller": True, "blockOwnerDeletion": True}


def pod(cluster: LocalCluster, rs: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    """Create a Pod of ``rs`` on the kwok node (kwok makes it Running)."""
    result: dict[str, Any] = cluster.client.create(PODS, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": LABELS, "ownerReferences": [owner(rs)]},
        "spec": {"nodeName": cluster.node, "containers": [{"name": "main",
                                                            "image": "example/crashy:1"}]}},
        namespace)
    return result


def start(cluster: LocalCluster, stop: threading.Event, interval: float = 2.0) -> None:
    """Crash a pod every ``interval`` seconds; after 4 restarts replace it by a new one."""
    with contextlib.suppress(ConflictError):
        cluster.client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
    _, rs = workload(cluster, NAMESPACE)

    def run() -> None:
        n, current, crashes = 0, "", 0
        while not stop.wait(interval):
            try:
                if not current or crashes >= 4:
                    n += 1
                    current, crashes = f"crashy-{n}", 0
                    pod(cluster, rs, current, NAMESPACE)
                    continue
                cluster.plane.restart_container(NAMESPACE, current)
                crashes += 1
            except Error as exc:  # the pod may not run yet: try again next time
                print(f"restart-scaler demo: {exc}", file=sys.stderr)

    threading.Thread(target=run, daemon=True, name="restart-scaler-demo").start()
