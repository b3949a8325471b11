"""A real local control plane (etcd + kube-apiserver, optional kwok) for tests and demos."""

from pycontroller.envtest._build import Binaries, build, cache_root, find_binaries
from pycontroller.envtest._control_plane import ControlPlane

__all__ = ["Binaries", "ControlPlane", "build", "cache_root", "find_binaries"]
