"""The informer cache: keys, tombstones, indexed stores, listers, the FIFOs between reflector
and informer, and the opt-in mutation detector (≙ k8s.io/client-go/tools/cache).

See ``docs/concepts/cache.md``.
"""

from __future__ import annotations

from pycontroller.cache._delta_fifo import DeltaFIFO
from pycontroller.cache._fifo import Delta, DeltaType, ProcessFunc, Queue, TransformFunc
from pycontroller.cache._gc import freeze_cache
from pycontroller.cache._index import NAMESPACE_INDEX, IndexFunc, meta_namespace_index_func
from pycontroller.cache._keys import (
    DeletedFinalStateUnknown,
    ObjectKey,
    meta_namespace_key,
    split_meta_namespace_key,
)
from pycontroller.cache._lister import Lister
from pycontroller.cache._mutation_detector import (
    ENV_CACHE_MUTATION_DETECTOR,
    CacheMutationDetector,
)
from pycontroller.cache._real_fifo import RealFIFO, StreamedRelist
from pycontroller.cache._store import Indexer, KeyFunc, KeyListerGetter, ReadOnlyIndexer, Store
from pycontroller.cache._thread_safe_store import ThreadSafeStore

__all__ = [
    "CacheMutationDetector",
    "DeletedFinalStateUnknown",
    "Delta",
    "DeltaFIFO",
    "DeltaType",
    "ENV_CACHE_MUTATION_DETECTOR",
    "IndexFunc",
    "Indexer",
    "KeyFunc",
    "KeyListerGetter",
    "Lister",
    "NAMESPACE_INDEX",
    "ObjectKey",
    "ProcessFunc",
    "Queue",
    "ReadOnlyIndexer",
    "RealFIFO",
    "Store",
    "StreamedRelist",
    "ThreadSafeStore",
    "TransformFunc",
    "freeze_cache",
    "meta_namespace_index_func",
    "meta_namespace_key",
    "split_meta_namespace_key",
]

# Re-exported classes and functions report their public path (house style §5.2).
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or (callable(_obj) and hasattr(_obj, "__code__")):
        _obj.__module__ = __name__
del _name, _obj
