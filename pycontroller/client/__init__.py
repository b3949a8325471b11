"""The client seam: config, auth, raw JSON requests, watches, resources, discovery."""

from pycontroller.client._discovery import resource_for
from pycontroller.client._kube import Client, connect, has_config
from pycontroller.client._lazy import LazyObject
from pycontroller.client._list_watch import EventStream, ListerWatcher, ListWatch
from pycontroller.client._observe import Write, WriteObserver
from pycontroller.client._resource import (
    BUILTINS,
    CONFIGMAPS,
    CUSTOM_RESOURCE_DEFINITIONS,
    DAEMONSETS,
    DEPLOYMENTS,
    EVENTS,
    EVENTS_K8S_IO,
    JOBS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    REPLICASETS,
    ROLE_BINDINGS,
    ROLES,
    SECRETS,
    SERVICE_ACCOUNTS,
    SERVICES,
    STATEFULSETS,
    Resource,
)
from pycontroller.client._watch import (
    WatchDecodeError,
    WatchEvent,
    WatchEventTooLargeError,
    WatchStalledError,
    WatchStream,
)
from pycontroller.client._writes import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRY,
    OperationResult,
    RetryBackoff,
    retry_on_conflict,
)

__all__ = [
    "BUILTINS", "DEFAULT_BACKOFF", "DEFAULT_RETRY", "OperationResult", "RetryBackoff",
    "retry_on_conflict", "CONFIGMAPS", "CUSTOM_RESOURCE_DEFINITIONS", "DAEMONSETS", "DEPLOYMENTS",
    "EVENTS", "EVENTS_K8S_IO", "JOBS", "LEASES", "NAMESPACES", "NODES", "PODS", "REPLICASETS",
    "ROLES", "ROLE_BINDINGS", "SECRETS", "SERVICES", "SERVICE_ACCOUNTS", "STATEFULSETS",
    "Client", "EventStream", "LazyObject", "ListWatch", "ListerWatcher", "Resource",
    "WatchDecodeError", "WatchEvent", "WatchEventTooLargeError", "WatchStalledError",
    "WatchStream", "Write",
    "WriteObserver", "connect",
    "has_config", "resource_for",
]
