"""Resource descriptors: which URL path serves a kind (≙ schema.GroupVersionResource)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True, slots=True)
class Resource:
    """A REST resource: group, version, plural name, kind and whether it is namespaced.

    Immutable and hashable, so it can key informer maps. Thread-safe.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        """``group/version`` or ``version`` for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None,
             subresource: str | None = None) -> str:
        """The URL path for the collection, or one object when ``name`` is given.

        Raises:
            ValueError: a namespace was given for a cluster-scoped resource, or a name or
                namespace is empty.
        """
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if namespace is not None:
            if not self.namespaced:
                raise ValueError(f"{self.plural} is cluster-scoped; no namespace allowed")
            if not namespace:
                raise ValueError("namespace must not be empty")
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.plural}"
        if name is not None:
            if not name:
                raise ValueError("name must not be empty")
            base += f"/{quote(name, safe='')}"
            if subresource:
                base += f"/{subresource}"
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
