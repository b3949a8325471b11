"""Leader election on a coordination.k8s.io Lease (≙ k8s.io/client-go/tools/leaderelection).

Build a ``LeaseLock`` on a client, a ``LeaderElectionConfig``, and a ``LeaderElector`` with
your callbacks; ``run(stop)`` blocks while it stands for election and while it leads.
"""

from pycontroller.leaderelection._in_cluster import in_cluster_namespace
from pycontroller.leaderelection._leader_elector import (
    JITTER_FACTOR,
    LeaderElectionConfig,
    LeaderElector,
    OnNewLeader,
    OnStartedLeading,
    OnStoppedLeading,
)
from pycontroller.leaderelection._resource_lock import (
    LeaderElectionRecord,
    LeaseLock,
    ResourceLock,
    format_microtime,
    parse_microtime,
)

__all__ = [
    "JITTER_FACTOR",
    "LeaderElectionConfig",
    "LeaderElectionRecord",
    "LeaderElector",
    "LeaseLock",
    "OnNewLeader",
    "OnStartedLeading",
    "OnStoppedLeading",
    "ResourceLock",
    "format_microtime",
    "in_cluster_namespace",
    "parse_microtime",
]

# Re-exported classes and functions report their public path (house style §5.2).
for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("pycontroller.leaderelection."):
        _obj.__module__ = __name__
del _name, _obj
