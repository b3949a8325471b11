"""Discovery against the real apiserver: kubectl-style names, preferred versions, caching."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from pycontroller import (
    CONFIGMAPS,
    DEPLOYMENTS,
    LEASES,
    PODS,
    Client,
    connect,
    resource_for,
)
from pycontroller.client import CUSTOM_RESOURCE_DEFINITIONS, EVENTS
from pycontroller.envtest import ControlPlane
from pycontroller.errors import NotFoundError

pytestmark = pytest.mark.integration


@pytest.fixture
def counted(kube_envtest: ControlPlane,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Client, list[str]]]:
    client = connect(kube_envtest.kubeconfig)  # a fresh Client: an empty discovery cache
    paths: list[str] = []
    original = client.request

    def request(method: str, path: str, **kwargs: Any) -> Any:
        paths.append(path)
        return original(method, path, **kwargs)

    monkeypatch.setattr(client, "request", request)
    yield client, paths
    client.close()


@pytest.mark.parametrize(("name", "expected"), [
    ("deploy", DEPLOYMENTS), ("deployments", DEPLOYMENTS), ("deployment", DEPLOYMENTS),
    ("Deployment", DEPLOYMENTS), ("deployments.apps", DEPLOYMENTS),
    ("deploy.apps", DEPLOYMENTS), ("deployments.v1.apps", DEPLOYMENTS),
    ("po", PODS), ("cm", CONFIGMAPS), ("leases", LEASES),
    ("ev", EVENTS), ("events", EVENTS),  # core v1 wins over events.k8s.io, as in kubectl
    ("crd", CUSTOM_RESOURCE_DEFINITIONS),
])
def test_names_resolve_like_kubectl(kube_client: Client, name: str, expected: Any) -> None:
    assert resource_for(kube_client, name) == expected


def test_unknown_names_and_bad_versions_are_refused(kube_client: Client) -> None:
    with pytest.raises(NotFoundError, match="no resource type 'nosuchthing'"):
        resource_for(kube_client, "nosuchthing")
    with pytest.raises(NotFoundError):
        resource_for(kube_client, "example.invalid/v1", "Nothing")
    with pytest.raises(ValueError, match="invalid group"):
        resource_for(kube_client, "../../api/v1", "Pod")


def test_discovery_is_cached_per_client(counted: tuple[Client, list[str]]) -> None:
    client, paths = counted
    assert resource_for(client, "deploy") == DEPLOYMENTS
    first = len(paths)
    assert "/apis" in paths and "/apis/apps/v1" in paths
    assert resource_for(client, "po") == PODS
    assert resource_for(client, "apps/v1", "DaemonSet").plural == "daemonsets"
    assert len(paths) == first, paths[first:]


def test_a_miss_refreshes_so_new_crds_are_found(
        counted: tuple[Client, list[str]], kube_envtest: ControlPlane) -> None:
    client, _paths = counted
    with pytest.raises(NotFoundError):
        resource_for(client, "gizmo")
    crd: dict[str, Any] = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "gizmos.disco.example.com"},
        "spec": {"group": "disco.example.com", "scope": "Cluster",
                 "names": {"plural": "gizmos", "singular": "gizmo", "kind": "Gizmo",
                           "shortNames": ["gz"]},
                 "versions": [
                     {"name": "v1beta1", "served": True, "storage": False,
                      "schema": {"openAPIV3Schema": {"type": "object"}}},
                     {"name": "v1", "served": True, "storage": True,
                      "schema": {"openAPIV3Schema": {"type": "object"}}}]},
    }
    kube_envtest.install_crds([crd])
    try:
        gizmos = resource_for(client, "gz")
        # The preferred version: the highest by Kubernetes version priority (v1 > v1beta1).
        assert (gizmos.group, gizmos.version, gizmos.plural, gizmos.namespaced) == (
            "disco.example.com", "v1", "gizmos", False)
        assert resource_for(client, "gizmos.v1beta1.disco.example.com").version == "v1beta1"
        assert resource_for(client, "Gizmo") == gizmos
        assert resource_for(client, "disco.example.com/v1", "Gizmo") == gizmos
    finally:
        with contextlib.suppress(NotFoundError):
            client.delete(CUSTOM_RESOURCE_DEFINITIONS, "gizmos.disco.example.com")
