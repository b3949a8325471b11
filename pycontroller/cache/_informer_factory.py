"""SharedInformerFactory: one informer per (resource, namespace, selectors) per process.

≙ client-go informers.SharedInformerFactory. The Manager owns one and hands its informers
to every controller, so two controllers watching pods share one watch and one cache.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, final

import structlog

from pycontroller.cache._reflector_metrics import ReflectorMetricsProvider
from pycontroller.cache._shared_informer import SharedIndexInformer, Transform, strip_managed_fields
from pycontroller.client._kube import Client
from pycontroller.client._list_watch import ListWatch
from pycontroller.client._resource import Resource

_Key = tuple[Resource, str | None, str | None, str | None]
_log = structlog.get_logger(__name__)


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

    ``shutdown`` stops every informer this factory started, whatever stop event each was
    started with (those events are not set), and waits for them; afterwards ``start`` does
    nothing (it logs ``informer_factory_shut_down``), as in client-go. ``on_failure`` is
    called (on the dying informer's thread) when an informer dies on an unexpected error.

    Thread-safety: thread-safe.
    """

    def __init__(self, client: Client, *, resync_period: float = 0.0,
                 namespace: str | None = None, transform: Transform | None = strip_managed_fields,
                 metrics: ReflectorMetricsProvider | None = None,
                 informer_options: dict[str, Any] | None = None,
                 on_failure: Callable[[SharedIndexInformer, BaseException], None] | None = None,
                 ) -> None:
        self._client = client
        self._resync = resync_period
        self._namespace = namespace
        self._transform = transform
        self._metrics = metrics
        self._options = dict(informer_options or {})
        self._lock = threading.Lock()
        self._informers: dict[_Key, SharedIndexInformer] = {}  # guarded by _lock
        self._started: set[_Key] = set()  # guarded by _lock
        self._shut_down = False  # guarded by _lock
        self._on_failure = on_failure

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
                    transform=self._transform, metrics=self._metrics,
                    on_failure=self._on_failure, **self._options)
                self._informers[key] = informer
        return informer

    def start(self, stop: threading.Event) -> None:
        """Start every informer not started yet (call again after asking for new ones).

        Does nothing after ``shutdown``.
        """
        with self._lock:
            if self._shut_down:
                _log.warning("informer_factory_shut_down", reason="start after shutdown")
                return
            pending = [(k, i) for k, i in self._informers.items() if k not in self._started]
            self._started.update(k for k, _ in pending)
        for _, informer in pending:
            informer.start(stop)

    def wait_for_cache_sync(self, stop: threading.Event, *,
                            timeout: float | None = None) -> dict[str, bool]:
        """Wait for the started informers; return ``{informer name: synced}``.

        Returns early, with that informer not synced, if one of them died (see
        ``failures``): it never will. Freezing the caches out of the cyclic GC is the
        process owner's call (the ``Manager`` does it; see ``freeze_cache``), not the
        factory's.
        """
        with self._lock:
            started = [i for k, i in self._informers.items() if k in self._started]

        def done() -> bool:
            return all(i.has_synced() for i in started) or any(
                i.failure is not None for i in started)

        wait_for_cache_sync(stop, done, timeout=timeout)
        return {i.name: i.has_synced() for i in started}

    def failures(self) -> dict[str, BaseException]:
        """``{informer name: error}`` for every informer that died on an unexpected error."""
        with self._lock:
            informers = list(self._informers.values())
        return {i.name: f for i in informers if (f := i.failure) is not None}

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop every informer this factory started and wait for each (``timeout`` each).

        The stop events given to ``start`` are not set. Later ``start`` calls do nothing.
        """
        with self._lock:
            self._shut_down = True
            started = [i for k, i in self._informers.items() if k in self._started]
        for informer in started:
            informer._halt()  # a sibling class of this package: no public stop() by design
        for informer in started:
            informer.join(timeout)
