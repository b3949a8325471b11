"""Deterministic, realistic pods for the benchmarks (two shapes: ``8k`` and ``4k``).

``8k``: a Deployment pod as the apiserver returns it — two containers (app + envoy sidecar),
env with fieldRef/secretKeyRef, probes on half of them, resources, volume mounts, a projected
service-account token volume, tolerations, 6-7 labels, 4-5 annotations, a ReplicaSet owner,
managedFields from kube-controller-manager and kubelet, 5 conditions, 2 container statuses:
about 8 KB of compact JSON. ``4k``: one container, no managedFields, fewer env entries and
conditions: about 4 KB.

``manifest(i)`` is what a client creates (no status, no server fields); ``served(i)`` is the
whole object as a LIST returns it.
"""

from __future__ import annotations

import random
from typing import Any

SENT_ANNOTATION = "bench.pycontroller.dev/sent-ns"
NAMESPACE = "bench"
TEAMS = ("payments", "search", "checkout", "identity", "ledger", "catalog")


def _fields(value: Any, depth: int = 4) -> Any:
    """A managedFields ``fieldsV1`` tree for ``value`` (the shape the apiserver writes)."""
    if depth == 0:
        return {}
    if isinstance(value, dict):
        return {f"f:{k}": _fields(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list):
        out: dict[str, Any] = {}
        for item in value:
            if isinstance(item, dict) and "name" in item:
                out[f'k:{{"name":"{item["name"]}"}}'] = {".": {}, **_fields(item, depth - 1)}
            elif isinstance(item, dict):
                out[f"v:{len(out)}"] = {}
            else:
                out[f"v:{item!r}"] = {}
        return out
    return {}


def _container(rng: random.Random, i: int, app: str, sidecar: bool, shape: str) -> dict[str, Any]:
    if sidecar:
        name, image = "envoy", "registry.example.com/envoyproxy/envoy:v1.31.2"
    else:
        name, image = app, f"registry.example.com/{app}/server:{rng.randint(1, 40)}.{i % 7}.0"
    env: list[dict[str, Any]] = [
        {"name": "POD_NAME", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                         "fieldPath": "metadata.name"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"apiVersion": "v1",
                                                       "fieldPath": "status.podIP"}}},
    ]
    extra = 6 if shape == "8k" else 3
    env += [{"name": f"{app.upper()}_SETTING_{k}", "value": f"value-{rng.randint(0, 999)}"}
            for k in range(extra)]
    if not sidecar:
        env.append({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {
            "name": f"{app}-db", "key": "password"}}})
    container: dict[str, Any] = {
        "name": name, "image": image, "imagePullPolicy": "IfNotPresent",
        "ports": [{"name": "http", "containerPort": 8080 if not sidecar else 15001,
                   "protocol": "TCP"}],
        "env": env,
        "resources": {"requests": {"cpu": "100m", "memory": "128Mi"},
                      "limits": {"cpu": "500m", "memory": "256Mi"}},
        "volumeMounts": [
            {"name": "config", "mountPath": "/etc/config", "readOnly": True},
            {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/"
             "serviceaccount", "readOnly": True},
        ],
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    if i % 2 == 0:
        probe = {"httpGet": {"path": "/healthz", "port": 8080, "scheme": "HTTP"},
                 "initialDelaySeconds": 5, "timeoutSeconds": 1, "periodSeconds": 10,
                 "successThreshold": 1, "failureThreshold": 3}
        container["readinessProbe"] = probe
        container["livenessProbe"] = probe
    return container


def _names(i: int) -> tuple[str, str, str]:
    app = f"{TEAMS[i % len(TEAMS)]}-api"
    rs = f"{app}-{(i * 7919) % 0xFFFFFF:06x}"[:30]
    return app, rs, f"{rs}-{(i * 104729) % 36**5:05x}"


def manifest(i: int, shape: str = "8k") -> dict[str, Any]:
    """The pod a client creates: metadata, labels, annotations, owner and spec."""
    rng = random.Random(i * 31 + 42)
    app, rs, name = _names(i)
    containers = [_container(rng, i, app, False, shape)]
    if shape == "8k":
        containers.append(_container(rng, i, app, True, shape))
    labels = {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": TEAMS[i % 6],
              "pod-template-hash": rs.rsplit("-", 1)[-1], "tier": "backend",
              "version": f"v{i % 5}", "environment": "production"}
    if i % 2:
        labels["canary"] = "false"
    annotations = {"kubectl.kubernetes.io/default-container": app,
                   "prometheus.io/scrape": "true", "prometheus.io/port": "9090",
                   SENT_ANNOTATION: "0"}
    if shape == "8k" and i % 3 == 0:
        annotations["sidecar.istio.io/status"] = '{"initContainers":null,"containers":["envoy"]}'
    volumes: list[dict[str, Any]] = [
        {"name": "config", "configMap": {"name": f"{app}-config", "defaultMode": 420}},
        {"name": "kube-api-access", "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt",
                           "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
                "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
        ]}},
    ]
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": NAMESPACE, "generateName": f"{rs}-",
            "labels": labels, "annotations": annotations,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": rs,
                                 "uid": f"{i:08x}-1111-4222-8333-{i * 13:012x}"[-36:],
                                 "controller": True, "blockOwnerDeletion": True}],
        },
        "spec": {
            "containers": containers, "volumes": volumes,
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst", "serviceAccountName": "default",
            "schedulerName": "default-scheduler", "priority": 0,
            "enableServiceLinks": True, "preemptionPolicy": "PreemptLowerPriority",
            "securityContext": {}, "nodeName": f"node-{i % 500:03d}",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
                {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                 "effect": "NoExecute", "tolerationSeconds": 300},
            ],
        },
    }


def pod_status(i: int, shape: str = "8k") -> dict[str, Any]:
    """The status kubelet would report for pod ``i``."""
    app, _, _ = _names(i)
    ts = f"2026-11-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:{(i * 7) % 60:02d}Z"
    kinds = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
             "PodScheduled")[: 5 if shape == "8k" else 3]
    names = [app, "envoy"] if shape == "8k" else [app]
    return {
        "phase": "Running", "hostIP": f"10.0.{i % 250}.{i % 200 + 1}",
        "hostIPs": [{"ip": f"10.0.{i % 250}.{i % 200 + 1}"}],
        "podIP": f"10.244.{(i // 250) % 250}.{i % 250 + 1}",
        "podIPs": [{"ip": f"10.244.{(i // 250) % 250}.{i % 250 + 1}"}],
        "startTime": ts, "qosClass": "Burstable",
        "conditions": [{"type": k, "status": "True", "lastProbeTime": None,
                        "lastTransitionTime": ts} for k in kinds],
        "containerStatuses": [{
            "name": n, "ready": True, "restartCount": i % 3, "started": True,
            "image": f"registry.example.com/{n}:1.0", "imageID":
                f"registry.example.com/{n}@sha256:{(i * 2654435761) % 2**64:064x}",
            "containerID": f"containerd://{(i * 40503 + len(n)) % 2**64:064x}",
            "state": {"running": {"startedAt": ts}}, "lastState": {},
        } for n in names],
    }


def served(i: int, shape: str = "8k", rv: int = 1000) -> dict[str, Any]:
    """Pod ``i`` as a LIST returns it: server metadata, managedFields (8k) and status."""
    pod = manifest(i, shape)
    meta = pod["metadata"]
    meta["uid"] = f"{i:08x}-aaaa-4bbb-8ccc-{i * 7:012x}"[-36:]
    meta["resourceVersion"] = str(rv)
    meta["creationTimestamp"] = "2026-11-30T10:00:00Z"
    status = pod_status(i, shape)
    if shape == "8k":
        spec_fields = _fields({"metadata": {k: meta[k] for k in
                                            ("generateName", "labels", "ownerReferences")},
                               "spec": pod["spec"]})
        meta["managedFields"] = [
            {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
             "time": "2026-11-30T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": spec_fields},
            {"manager": "kubelet", "operation": "Update", "apiVersion": "v1",
             "time": "2026-11-30T10:00:05Z", "fieldsType": "FieldsV1",
             "fieldsV1": {"f:status": _fields(status)}, "subresource": "status"},
        ]
    pod["status"] = status
    return pod
