"""The deployment manifests: valid for the apiserver, and their RBAC is enough — and no more."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import Process, event, free_port

from pycontroller import Client, connect
from pycontroller.client import SECRETS
from pycontroller.envtest import ControlPlane
from pycontroller.errors import ConflictError, ForbiddenError

pytestmark = pytest.mark.e2e
MANIFESTS = Path(__file__).resolve().parents[2] / "examples" / "pod_logger" / "manifests"
API = {"Namespace": "/api/v1/namespaces",
       "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
       "ClusterRole": "/apis/rbac.authorization.k8s.io/v1/clusterroles",
       "ClusterRoleBinding": "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
       "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments"}


def documents() -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = []
    for name in ("deployment.yaml", "rbac.yaml"):
        docs += [d for d in yaml.safe_load_all((MANIFESTS / name).read_text()) if d]
    return sorted(docs, key=lambda d: d["kind"] != "Namespace")


def apply(client: Client, doc: dict[str, Any], *, dry_run: bool = False) -> None:
    path = API[doc["kind"]].format(ns=doc["metadata"].get("namespace", ""))
    with contextlib.suppress(ConflictError):  # applied by an earlier test on this cluster
        client.request("POST", path + ("?dryRun=All" if dry_run else ""), body=doc)


def test_manifests_are_valid_and_rbac_is_least_privilege(
    kube_envtest: ControlPlane, kube_client: Client
) -> None:
    for doc in documents():
        apply(kube_client, doc, dry_run=doc["kind"] == "Deployment")  # no controller-manager
    kubeconfig = kube_envtest.service_account_kubeconfig("pod-logger", "pod-logger")
    with pytest.raises(ForbiddenError):  # least privilege: pods only
        connect(kubeconfig).list(SECRETS, "default")
    port = free_port()
    proc = Process(["--kubeconfig", str(kubeconfig), "--metrics-bind-address",
                    f"127.0.0.1:{port}", "--health-probe-bind-address", f"127.0.0.1:{port}"])
    try:
        proc.wait_for(event("controllers_started"), timeout=60, what="sync with the SA's RBAC")
    finally:
        assert proc.stop() == 0
