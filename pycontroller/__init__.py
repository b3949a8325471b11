"""pycontroller: client-go-style machinery for Kubernetes controllers in Python.

The public API is exactly ``__all__``; everything else (modules starting with ``_``) is
private. Subpackages (``pycontroller.client``, ``.cache``, ``.workqueue``, ``.controller``,
``.metrics``, ``.envtest``, ``.testing``) export more specialised names.
"""


from pycontroller.cache import (
    DeletedFinalStateUnknown,
    Lister,
    ObjectKey,
    meta_namespace_key,
    split_meta_namespace_key,
)
from pycontroller.cache._informer_factory import SharedInformerFactory, wait_for_cache_sync
from pycontroller.cache._processor import Registration
from pycontroller.cache._shared_informer import SharedIndexInformer, strip_managed_fields
from pycontroller.client import (
    CONFIGMAPS,
    DEPLOYMENTS,
    LEASES,
    NAMESPACES,
    NODES,
    PODS,
    SECRETS,
    SERVICES,
    Client,
    ListWatch,
    Resource,
    connect,
    has_config,
    resource_for,
)
from pycontroller.controller import (
    Controller,
    Manager,
    Predicate,
    Requeue,
    Watch,
    and_,
    annotations_changed,
    generation_changed,
    labels_changed,
    not_,
    or_,
    resource_version_changed,
    where,
)
from pycontroller.leaderelection import LeaderElectionConfig, LeaderElector, LeaseLock
from pycontroller.workqueue import (
    RateLimitingQueue,
    WorkQueue,
    default_controller_rate_limiter,
)

__all__ = [
    "CONFIGMAPS",
    "DEPLOYMENTS",
    "LEASES",
    "NAMESPACES",
    "NODES",
    "PODS",
    "SECRETS",
    "SERVICES",
    "Client",
    "Controller",
    "DeletedFinalStateUnknown",
    "ListWatch",
    "LeaderElectionConfig",
    "LeaderElector",
    "LeaseLock",
    "Lister",
    "Manager",
    "Predicate",
    "ObjectKey",
    "RateLimitingQueue",
    "Registration",
    "Requeue",
    "Resource",
    "SharedIndexInformer",
    "SharedInformerFactory",
    "Watch",
    "WorkQueue",
    "and_",
    "annotations_changed",
    "connect",
    "default_controller_rate_limiter",
    "generation_changed",
    "has_config",
    "labels_changed",
    "meta_namespace_key",
    "not_",
    "or_",
    "resource_for",
    "resource_version_changed",
    "split_meta_namespace_key",
    "strip_managed_fields",
    "wait_for_cache_sync",
    "where",
]
