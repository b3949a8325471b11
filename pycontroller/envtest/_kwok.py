"""kwok: simulated nodes, so that pods bound to them turn Running without a kubelet.

There is no scheduler in the local control plane: pods must name their node in
``spec.nodeName``. The stages below are our own minimal set: a node becomes Ready, a
pending pod bound to a managed node becomes Running, a pod marked for deletion is removed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pycontroller._util._paths import check_path_segment
from pycontroller.envtest._files import write_file
from pycontroller.envtest._http import Response
from pycontroller.envtest._process import ManagedProcess
from pycontroller.errors import ControlPlaneError

MANAGED_ANNOTATION = "kwok.x-k8s.io/node"

_STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: envtest-node-ready}
spec:
  resourceRef: {apiGroup: v1, kind: Node}
  selector:
    matchExpressions:
    - {key: '.status.conditions.[] | select( .type == "Ready" ) | .status', operator: NotIn,
       values: ['True']}
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      - {type: Ready, status: "True", reason: KwokReady, message: simulated by kwok,
         lastHeartbeatTime: {{ $now | Quote }}, lastTransitionTime: {{ $now | Quote }}}
      addresses:
      - {type: InternalIP, address: {{ NodeIP | Quote }}}
      - {type: Hostname, address: {{ .metadata.name | Quote }}}
      allocatable: {cpu: "32", memory: 256Gi, pods: "1000"}
      capacity: {cpu: "32", memory: 256Gi, pods: "1000"}
      nodeInfo: {kubeletVersion: fake, architecture: amd64, operatingSystem: linux}
      phase: Running
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: envtest-pod-running}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: DoesNotExist}
    - {key: .status.phase, operator: In, values: [Pending]}
  next:
    statusTemplate: |
      {{ $now := Now }}
      phase: Running
      startTime: {{ $now | Quote }}
      conditions:
      - {type: Initialized, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: ContainersReady, status: "True", lastTransitionTime: {{ $now | Quote }}}
      - {type: Ready, status: "True", lastTransitionTime: {{ $now | Quote }}}
      containerStatuses:
      {{ range .spec.containers }}
      - name: {{ .name | Quote }}
        image: {{ .image | Quote }}
        ready: true
        started: true
        restartCount: 0
        state: {running: {startedAt: {{ $now | Quote }}}}
      {{ end }}
      {{ with NodeIPsWith .spec.nodeName }}
      hostIP: {{ index . 0 | Quote }}
      {{ end }}
      {{ with PodIPsWith .spec.nodeName false .metadata.uid .metadata.name .metadata.namespace }}
      podIP: {{ index . 0 | Quote }}
      {{ end }}
---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata: {name: envtest-pod-delete}
spec:
  resourceRef: {apiGroup: v1, kind: Pod}
  selector:
    matchExpressions:
    - {key: .metadata.deletionTimestamp, operator: Exists}
  next:
    delete: true
"""


class Kwok(ManagedProcess):
    """The kwok process managing nodes annotated ``kwok.x-k8s.io/node=fake``."""

    def __init__(self, binary: Path, kubeconfig: Path, workdir: Path) -> None:
        config = workdir / "kwok-stages.yaml"
        write_file(config, _STAGES.encode(), 0o644)
        super().__init__("kwok", [
            str(binary), f"--kubeconfig={kubeconfig}", f"--config={config}",
            f"--manage-nodes-with-annotation-selector={MANAGED_ANNOTATION}=fake",
            "--node-lease-duration-seconds=0", "--cidr=10.244.0.0/16", "--node-ip=10.0.0.1",
        ], workdir / "kwok.log")

    @staticmethod
    def node_manifest(name: str) -> dict[str, Any]:
        """A Node that kwok manages."""
        return {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {MANAGED_ANNOTATION: "fake"},
                         "labels": {"type": "kwok", "kubernetes.io/hostname": name}},
            "spec": {},
        }

    @staticmethod
    def restart_container(
        request: Callable[..., Response], namespace: str, pod: str, container: str | None,
    ) -> int:
        """Patch the pod's status so one container shows one more restart.

        Raises:
            ValueError: ``namespace`` or ``pod`` is not a valid path segment.
        """
        check_path_segment("namespace", namespace)
        check_path_segment("pod name", pod)
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/status"
        for _ in range(5):  # optimistic concurrency: retry on conflict
            resp = request("GET", path)
            if resp.status != 200:
                raise ControlPlaneError(f"reading pod {namespace}/{pod}: {resp.text}")
            obj = resp.body
            statuses = obj.get("status", {}).get("containerStatuses") or []
            target = next((s for s in statuses if container in (None, s["name"])), None)
            if target is None:
                raise ControlPlaneError(f"pod {namespace}/{pod} has no running container status")
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            target["lastState"] = {"terminated": {
                "exitCode": 1, "reason": "Error", "startedAt": now, "finishedAt": now}}
            target["restartCount"] = int(target.get("restartCount", 0)) + 1
            target["state"] = {"running": {"startedAt": now}}
            resp = request("PUT", path, obj)
            if resp.status == 200:
                return int(target["restartCount"])
            if resp.status != 409:
                raise ControlPlaneError(f"updating pod {namespace}/{pod}: {resp.text}")
        raise ControlPlaneError(f"pod {namespace}/{pod} kept conflicting")
