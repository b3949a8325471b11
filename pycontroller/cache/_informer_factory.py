"""SharedInformerFactory: one informer per (resource, namespace, selectors) per process.

≙ client-go informers.SharedInformerFactory. The Manager owns one and hands its informers
to every controller, so two controllers watching pods share one watch and one cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, final

from pycontroller.cache._gc import freeze_cache
from pycontroller.cache._reflector_metrics import ReflectorMetricsProvider
from pycontroller.cache._shared_informer import SharedIndexInformer, Transform, strip_managed_fields
from pycontroller.client._kube import Client
from pycontroller.client._list_watch import ListWatch
from pycontroller.client._resource import Resource

_Key = tuple[Resource, str | None, str | None, str | None]


def wait_for_cache_sync(stop: threading.Event, *has_synced: Callable[[], bool],
                        timeout: float | None = None, interval: float = 0.05) -> bool:
    """Block until every ``has_synced()`` is true; False if ``stop`` was set or time ran out.

    Pass ``Registration.has_synced`` (not only the informer's) so that workers start after
    their handlers have seen the initial list.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while not all(check() for check in has_synced):
        remaining = None if deadline is None else deadline - time.monotonic()
        if remaining is not None and remaining <= 0:
            return False
        if stop.wait(interval if remaining is None else min(interval, remaining)):
            return False
    return True


@final
class SharedInformerFactory:
    """Creates and shares informers; ``start`` runs all that are not running yet.

    Thread-safety: thread-safe.
    """

    def __init__(self, client: Client, *, resync_period: float = 0.0,
                 namespace: str | None = None, transform: Transform | None = strip_managed_fields,
                 metrics: ReflectorMetricsProvider | None = None,
                 informer_options: dict[str, Any] | None = None) -> None:
        self._client = client
        self._resync = resync_period
        self._namespace = namespace
        self._transform = transform
        self._metrics = metrics
        self._options = dict(informer_options or {})
        self._lock = threading.Lock()
        self._informers: dict[_Key, SharedIndexInformer] = {}  # guarded by _lock
        self._started: set[_Key] = set()  # guarded by _lock
        self._stop: threading.Event | None = None  # guarded by _lock

    def informer_for(self, resource: Resource, *, namespace: str | None = None,
                     label_selector: str | None = None, field_selector: str | None = None,
                     resync_period: float | None = None) -> SharedIndexInformer:
        """Return the shared informer for this resource and scope, creating it once.

        ``namespace`` defaults to the factory's; cluster-scoped resources ignore it.
        """
        ns = (namespace or self._namespace) if resource.namespaced else None
        key = (resource, ns, label_selector or None, field_selector or None)
        with self._lock:
            informer = self._informers.get(key)
            if informer is None:
                lw = ListWatch(self._client, resource, ns, label_selector, field_selector)
                informer = SharedIndexInformer(
                    lw, name=lw.description.replace(" ", ","), expected_kind=resource.kind,
                    resync_period=self._resync if resync_period is None else resync_period,
                    transform=self._transform, metrics=self._metrics, **self._options)
                self._informers[key] = informer
        return informer

    def start(self, stop: threading.Event) -> None:
        """Start every informer not started yet (call again after asking for new ones)."""
        with self._lock:
            self._stop = stop
            pending = [(k, i) for k, i in self._informers.items() if k not in self._started]
            self._started.update(k for k, _ in pending)
        for _, informer in pending:
            informer.start(stop)

    def wait_for_cache_sync(self, stop: threading.Event, *, timeout: float | None = None,
                            freeze_gc: bool = True) -> dict[str, bool]:
        """Wait for the started informers; return ``{informer name: synced}``.

        When all synced and ``freeze_gc`` is set, the caches are frozen out of the cyclic
        GC once (``freeze_cache``), so full collections stop walking them.
        """
        with self._lock:
            started = [i for k, i in self._informers.items() if k in self._started]
        if wait_for_cache_sync(stop, *(i.has_synced for i in started), timeout=timeout) \
                and freeze_gc and started:
            freeze_cache()
        return {i.name: i.has_synced() for i in started}

    def shutdown(self, timeout: float | None = None) -> None:
        """Set the stop event (if started) and wait for every informer thread."""
        with self._lock:
            stop, informers = self._stop, list(self._informers.values())
        if stop is not None:
            stop.set()
        for informer in informers:
            informer.join(timeout)
