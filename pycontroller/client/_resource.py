"""Resource descriptors: which URL path serves a kind (≙ schema.GroupVersionResource)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from pycontroller._util._paths import check_path_segment


@dataclass(frozen=True, slots=True)
class Resource:
    """A REST resource: group, version, plural name, kind and whether it is namespaced.

    Immutable and hashable, so it can key informer maps. Thread-safe.

    Invariants: ``version`` and ``plural`` (and ``group`` unless empty) are valid URL path
    segments: not ``.`` or ``..``, no ``/`` or ``%`` (checked on construction, as every
    part of ``path``).
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    def __post_init__(self) -> None:
        if self.group:
            check_path_segment("group", self.group)
        check_path_segment("version", self.version)
        check_path_segment("resource", self.plural)

    @property
    def api_version(self) -> str:
        """``group/version`` or ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """The URL path for the collection, or one object when ``name`` is given.

        Every part is checked as client-go's ``IsValidPathSegmentName`` does, so no name
        taken from user input can reach another URL (``..`` would be the collection's parent).

        Raises:
            ValueError: a namespace was given for a cluster-scoped resource, a name or
                namespace is empty, or a name, namespace or subresource is ``.`` or ``..``
                or contains ``/`` or ``%``.
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None:
            if not self.namespaced:
                raise ValueError(f"{self.plural} is cluster-scoped; no namespace allowed")
            check_path_segment("namespace", namespace)
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is None and subresource:
            raise ValueError("a subresource needs a name")
        if name is not None:
            check_path_segment("name", name)
            base += f"/{quote(name, safe='')}"
            if subresource:  # "" means none, as before
                check_path_segment("subresource", subresource)
                base += f"/{quote(subresource, safe='')}"
        return base

    def __str__(self) -> str:
        return f"{self.api_version}/{self.plural}"


PODS = Resource("", "v1", "pods", "Pod")
SERVICES = Resource("", "v1", "services", "Service")
CONFIGMAPS = Resource("", "v1", "configmaps", "ConfigMap")
SECRETS = Resource("", "v1", "secrets", "Secret")
NAMESPACES = Resource("", "v1", "namespaces", "Namespace", namespaced=False)
NODES = Resource("", "v1", "nodes", "Node", namespaced=False)
EVENTS = Resource("", "v1", "events", "Event")
"""Core (legacy) ``v1`` Events, as ``kubectl get events`` shows them."""
EVENTS_K8S_IO = Resource("events.k8s.io", "v1", "events", "Event")
"""``events.k8s.io/v1`` Events (series, reportingController), what ``EventRecorder`` posts."""
SERVICE_ACCOUNTS = Resource("", "v1", "serviceaccounts", "ServiceAccount")
DEPLOYMENTS = Resource("apps", "v1", "deployments", "Deployment")
REPLICASETS = Resource("apps", "v1", "replicasets", "ReplicaSet")
STATEFULSETS = Resource("apps", "v1", "statefulsets", "StatefulSet")
DAEMONSETS = Resource("apps", "v1", "daemonsets", "DaemonSet")
JOBS = Resource("batch", "v1", "jobs", "Job")
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLE_BINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
CUSTOM_RESOURCE_DEFINITIONS = Resource(
    "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition",
    namespaced=False,
)

BUILTINS: tuple[Resource, ...] = (
    PODS, SERVICES, CONFIGMAPS, SECRETS, NAMESPACES, NODES, EVENTS, EVENTS_K8S_IO,
    SERVICE_ACCOUNTS,
    DEPLOYMENTS, REPLICASETS, STATEFULSETS, DAEMONSETS, JOBS, LEASES, ROLES, ROLE_BINDINGS,
    CUSTOM_RESOURCE_DEFINITIONS,
)
