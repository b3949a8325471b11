"""pycontroller: client-go-style machinery for Kubernetes controllers in Python.

The public API is exactly ``__all__``; everything else (modules starting with ``_``) is
private. Subpackages (``pycontroller.client``, ``.cache``, ``.workqueue``, ``.controller``,
``.events``, ``.metrics``, ``.envtest``, ``.testing``) export more specialised names.
"""

from pycontroller._meta import (
    ConditionStatus,
    add_finalizer,
    controller_owner,
    get_condition,
    has_finalizer,
    is_condition_true,
    remove_condition,
    remove_finalizer,
    set_condition,
    set_controller_reference,
    set_owner_reference,
)
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
    OperationResult,
    Resource,
    connect,
    has_config,
    resource_for,
    retry_on_conflict,
)
from pycontroller.controller import Controller, Manager, Requeue
from pycontroller.events import EventRecorder
from pycontroller.leaderelection import LeaderElectionConfig, LeaderElector, LeaseLock
from pycontroller.workqueue import (
    RateLimitingQueue,
    WorkQueue,
    default_controller_rate_limiter,
)

__all__ = [
    "ConditionStatus",
    "add_finalizer",
    "controller_owner",
    "get_condition",
    "has_finalizer",
    "is_condition_true",
    "remove_condition",
    "remove_finalizer",
    "set_condition",
    "set_controller_reference",
    "set_owner_reference",
    "OperationResult",
    "retry_on_conflict",
    "EventRecorder",
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
    "ObjectKey",
    "RateLimitingQueue",
    "Registration",
    "Requeue",
    "Resource",
    "SharedIndexInformer",
    "SharedInformerFactory",
    "WorkQueue",
    "connect",
    "default_controller_rate_limiter",
    "has_config",
    "meta_namespace_key",
    "resource_for",
    "split_meta_namespace_key",
    "strip_managed_fields",
    "wait_for_cache_sync",
]
