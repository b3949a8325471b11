"""The local demo: a control plane with a kwok node and a small pod workload."""

from __future__ import annotations

import random
import sys
import threading
from typing import Any

from pycontroller import NAMESPACES, PODS, Client
from pycontroller.cli import LocalCluster
from pycontroller.envtest import ControlPlane
from pycontroller.errors import APIError, Error

DEMO_NAMESPACE = "demo"
INTERVAL = 1.0  # seconds between workload steps (--demo-interval)


def _pod(name: str, app: str, node: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 5,
                 "containers": [{"name": "main", "image": f"example/{app}:1.0"}]},
    }


def start(cluster: LocalCluster, stop: threading.Event) -> None:
    """``App``'s ``local`` hook: run a :class:`Workload` on the local control plane, one step
    every ``--demo-interval`` seconds, until ``stop``."""
    interval = getattr(cluster.options, "demo_interval", INTERVAL)
    Workload(cluster.client, cluster.plane, node=cluster.node, interval=interval).start(stop)


class Workload:
    """Creates, updates, restarts and deletes pods in ``demo`` every ``interval`` seconds."""

    def __init__(self, client: Client, plane: ControlPlane, *, node: str,
                 interval: float = INTERVAL, seed: int = 7) -> None:
        self._client, self._plane, self._node = client, plane, node
        self._interval = interval
        self._rnd = random.Random(seed)
        self._pods: list[str] = []
        self._n = 0
        self._thread: threading.Thread | None = None

    def start(self, stop: threading.Event) -> None:
        """Run in a background thread until ``stop``."""
        try:
            self._client.create(NAMESPACES, {"apiVersion": "v1", "kind": "Namespace",
                                             "metadata": {"name": DEMO_NAMESPACE}})
        except APIError as exc:
            if exc.status != 409:
                raise
        self._thread = threading.Thread(target=self._run, args=(stop,), daemon=True,
                                        name="pod-logger-workload")
        self._thread.start()

    def _run(self, stop: threading.Event) -> None:
        steps = [self._create, self._create, self._create, self._relabel, self._restart,
                 self._delete]
        i = 0
        while not stop.wait(self._interval):
            try:
                steps[i % len(steps)]()
            except Error as exc:  # a demo step failing is not fatal; say so and go on
                print(f"pod-logger demo: workload step failed: {exc}", file=sys.stderr)
            i += 1

    def _create(self) -> None:
        self._n += 1
        name = f"web-{self._n}"
        app = self._rnd.choice(["web", "api", "worker"])
        self._client.create(PODS, _pod(name, app, self._node), DEMO_NAMESPACE)
        self._pods.append(name)

    def _relabel(self) -> None:
        if self._pods:
            self._client.patch(PODS, self._rnd.choice(self._pods),
                               {"metadata": {"labels": {"tier": "demo"}}}, DEMO_NAMESPACE)

    def _restart(self) -> None:
        if self._pods:
            self._plane.restart_container(DEMO_NAMESPACE, self._rnd.choice(self._pods))

    def _delete(self) -> None:
        if self._pods:
            name = self._pods.pop(self._rnd.randrange(len(self._pods)))
            self._client.delete(PODS, name, DEMO_NAMESPACE)
