"""The Prometheus metrics provider (≙ k8s.io/component-base/metrics/prometheus/workqueue).

The only module of pycontroller that imports ``prometheus_client``. Work queue metric
names, help texts, the ``name`` label and the histogram buckets are client-go's, and the
controller metrics are controller-runtime's, so dashboards and alerts written for Go
controllers work unchanged. ``exposition`` renders a registry for a ``/metrics`` endpoint.

Each metric family is registered once per ``CollectorRegistry`` (cached in a
``WeakKeyDictionary`` keyed by the registry), so any number of providers and queues can
share one registry; each queue gets the child labelled with its ``name``.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar, cast, final

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client import Counter as _PromCounter
from prometheus_client import Gauge as _PromGauge
from prometheus_client import Histogram as _PromHistogram

from pycontroller.metrics._provider import Counter, FunctionGauge, Gauge, Histogram

__all__ = ["WORKQUEUE_DURATION_BUCKETS", "PrometheusMetricsProvider", "exposition"]

WORKQUEUE_DURATION_BUCKETS: tuple[float, ...] = tuple(float(f"1e{k}") for k in range(-8, 2))
"""client-go's buckets for the workqueue duration histograms: 1e-8 s to 10 s, a decade apart."""

_LABELS = ("name",)


@final
@dataclass(frozen=True, slots=True)
class _WorkqueueFamilies:
    depth: _PromGauge
    adds: _PromCounter
    latency: _PromHistogram
    work_duration: _PromHistogram
    unfinished_work_seconds: _PromGauge
    longest_running_processor_seconds: _PromGauge
    retries: _PromCounter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> _WorkqueueFamilies:
        buckets = WORKQUEUE_DURATION_BUCKETS
        return cls(
            depth=_PromGauge(
                "workqueue_depth", "Current depth of workqueue", _LABELS, registry=registry
            ),
            adds=_PromCounter(
                "workqueue_adds_total", "Total number of adds handled by workqueue",
                _LABELS, registry=registry,
            ),
            latency=_PromHistogram(
                "workqueue_queue_duration_seconds",
                "How long in seconds an item stays in workqueue before being requested.",
                _LABELS, registry=registry, buckets=buckets,
            ),
            work_duration=_PromHistogram(
                "workqueue_work_duration_seconds",
                "How long in seconds processing an item from workqueue takes.",
                _LABELS, registry=registry, buckets=buckets,
            ),
            unfinished_work_seconds=_PromGauge(
                "workqueue_unfinished_work_seconds",
                "How many seconds of work has done that is in progress and hasn't been "
                "observed by work_duration. Large values indicate stuck threads. One can "
                "deduce the number of stuck threads by observing the rate at which this "
                "increases.",
                _LABELS, registry=registry,
            ),
            longest_running_processor_seconds=_PromGauge(
                "workqueue_longest_running_processor_seconds",
                "How many seconds has the longest running processor for workqueue been "
                "running.",
                _LABELS, registry=registry,
            ),
            retries=_PromCounter(
                "workqueue_retries_total", "Total number of retries handled by workqueue",
                _LABELS, registry=registry,
            ),
        )


# Reflector families (protocol: pycontroller.cache._reflector_metrics). client-go defines
# these (as summaries) but no longer records them; ours are histograms.
_SECONDS_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0)
_SIZE_BUCKETS = (1.0, 10.0, 100.0, 1_000.0, 10_000.0, 100_000.0)


@final
@dataclass(frozen=True, slots=True)
class _ReflectorFamilies:
    lists: _PromCounter
    relists: _PromCounter
    list_duration: _PromHistogram
    items_per_list: _PromHistogram
    watches: _PromCounter
    short_watches: _PromCounter
    watch_duration: _PromHistogram
    items_per_watch: _PromHistogram
    watch_errors: _PromCounter
    last_resource_version: _PromGauge
    last_resource_version_timestamp: _PromGauge
    pending_notifications: _PromGauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> _ReflectorFamilies:
        def counter(name: str, doc: str) -> _PromCounter:
            return _PromCounter(name, doc, _LABELS, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...]) -> _PromHistogram:
            return _PromHistogram(name, doc, _LABELS, registry=registry, buckets=buckets)

        def gauge(name: str, doc: str) -> _PromGauge:
            return _PromGauge(name, doc, _LABELS, registry=registry)

        return cls(
            lists=counter("reflector_lists_total", "Full syncs (LIST or WatchList) completed."),
            relists=counter("reflector_relists_total", "Syncs after the first one."),
            list_duration=histogram("reflector_list_duration_seconds",
                                    "Seconds per completed LIST.", _SECONDS_BUCKETS),
            items_per_list=histogram("reflector_items_per_list", "Items per completed LIST.",
                                     _SIZE_BUCKETS),
            watches=counter("reflector_watches_total", "WATCH requests opened."),
            short_watches=counter("reflector_short_watches_total",
                                  "Watches closed within a second without an event."),
            watch_duration=histogram("reflector_watch_duration_seconds",
                                     "Seconds per watch stream.", _SECONDS_BUCKETS),
            items_per_watch=histogram("reflector_items_per_watch", "Events per watch stream.",
                                      _SIZE_BUCKETS),
            watch_errors=counter("reflector_watch_errors_total",
                                 "List and watch errors the reflector recovered from."),
            last_resource_version=gauge("reflector_last_resource_version",
                                        "Last resourceVersion seen (when numeric)."),
            last_resource_version_timestamp=gauge(
                "reflector_last_resource_version_timestamp_seconds",
                "Unix time the resourceVersion last advanced."),
            pending_notifications=gauge(
                "informer_pending_notifications",
                "Notifications buffered for an event handler and not yet delivered."),
        )


# Controller families (protocol: pycontroller.controller._metrics), controller-runtime's
# names and reconcile-time buckets.
_CONTROLLER_LABELS = ("controller",)
_RECONCILE_SECONDS = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7,
    0.8, 0.9, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0, 9.0,
    10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 60.0,
)


@final
@dataclass(frozen=True, slots=True)
class _ControllerFamilies:
    reconcile_total: _PromCounter
    reconcile_errors: _PromCounter
    reconcile_time: _PromHistogram
    active_workers: _PromGauge
    max_concurrent: _PromGauge
    terminal_errors: _PromCounter
    panics: _PromCounter
    timeouts: _PromCounter
    ryow_waits: _PromCounter
    ryow_timeouts: _PromCounter
    leader_status: _PromGauge
    cache_items: _PromGauge

    @classmethod
    def register(cls, registry: CollectorRegistry) -> _ControllerFamilies:
        return cls(
            reconcile_total=_PromCounter(
                "controller_runtime_reconcile_total",
                "Total number of reconciliations per controller",
                ("controller", "result"), registry=registry),
            reconcile_errors=_PromCounter(
                "controller_runtime_reconcile_errors_total",
                "Total number of reconciliation errors per controller",
                _CONTROLLER_LABELS, registry=registry),
            reconcile_time=_PromHistogram(
                "controller_runtime_reconcile_time_seconds",
                "Length of time per reconciliation per controller",
                _CONTROLLER_LABELS, registry=registry, buckets=_RECONCILE_SECONDS),
            active_workers=_PromGauge(
                "controller_runtime_active_workers",
                "Number of currently used workers per controller",
                _CONTROLLER_LABELS, registry=registry),
            max_concurrent=_PromGauge(
                "controller_runtime_max_concurrent_reconciles",
                "Maximum number of concurrent reconciles per controller",
                _CONTROLLER_LABELS, registry=registry),
            terminal_errors=_PromCounter(
                "controller_runtime_terminal_reconcile_errors_total",
                "Total number of terminal reconciliation errors per controller",
                _CONTROLLER_LABELS, registry=registry),
            panics=_PromCounter(
                "controller_runtime_reconcile_panics_total",
                "Total number of reconciliation panics (unexpected exceptions) per controller",
                _CONTROLLER_LABELS, registry=registry),
            timeouts=_PromCounter(
                "controller_runtime_reconcile_timeouts_total",
                "Total number of reconciliation timeouts per controller",
                _CONTROLLER_LABELS, registry=registry),
            ryow_waits=_PromCounter(
                "pycontroller_read_your_writes_waits_total",
                "Reconciles that waited for the cache to reach the controller's own writes",
                _CONTROLLER_LABELS, registry=registry),
            ryow_timeouts=_PromCounter(
                "pycontroller_read_your_writes_timeouts_total",
                "Waits for the controller's own writes that hit their bound",
                _CONTROLLER_LABELS, registry=registry),
            leader_status=_PromGauge(
                "leader_election_master_status",
                "Gauge of if the reporting system is master of the relevant lease, "
                "0 indicates backup, 1 indicates master. 'name' is the string used to "
                "identify the lease.", _LABELS, registry=registry),
            cache_items=_PromGauge(
                "informer_cache_items", "Objects in an informer's cache.",
                _LABELS, registry=registry),
        )


# client-go's rest_client_* families (k8s.io/client-go/tools/metrics, registered by
# component-base), with its request-latency buckets.
_REQUEST_SECONDS = (0.005, 0.025, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0, 30.0, 60.0)


@final
@dataclass(frozen=True, slots=True)
class _RestClientFamilies:
    requests: _PromCounter
    latency: _PromHistogram
    rate_limiter: _PromHistogram

    @classmethod
    def register(cls, registry: CollectorRegistry) -> _RestClientFamilies:
        return cls(
            requests=_PromCounter(
                "rest_client_requests_total",
                "Number of HTTP requests, partitioned by status code, method, and host.",
                ("code", "method", "host"), registry=registry),
            latency=_PromHistogram(
                "rest_client_request_duration_seconds",
                "Request latency in seconds. Broken down by verb, and host.",
                ("verb", "host"), registry=registry, buckets=_REQUEST_SECONDS),
            rate_limiter=_PromHistogram(
                "rest_client_rate_limiter_duration_seconds",
                "Client side rate limiter latency in seconds. Broken down by verb, and host.",
                ("verb", "host"), registry=registry, buckets=_REQUEST_SECONDS),
        )


# Event recorder families (protocol: EventsMetricsProvider). client-go has no such metric.
@final
@dataclass(frozen=True, slots=True)
class _EventFamilies:
    dropped: _PromCounter
    writes: _PromCounter

    @classmethod
    def register(cls, registry: CollectorRegistry) -> _EventFamilies:
        return cls(
            dropped=_PromCounter(
                "event_recorder_dropped_events_total",
                "Events an event recorder did not write, by reason (buffer_full, "
                "rate_limited, write_failed, stopped)",
                ("component", "reason"), registry=registry),
            writes=_PromCounter(
                "event_recorder_writes_total",
                "Event writes sent to the API server, by verb (create, patch)",
                ("component", "verb"), registry=registry),
        )


F = TypeVar("F")

_families_lock = threading.Lock()
# registry -> {family group's register function -> its families}. The families hold no
# reference to their registry, so an entry vanishes with its registry.
_families: weakref.WeakKeyDictionary[
    CollectorRegistry, dict[Callable[[CollectorRegistry], object], object]
] = weakref.WeakKeyDictionary()  # guarded by _families_lock


def _families_for(registry: CollectorRegistry, register: Callable[[CollectorRegistry], F]) -> F:
    """Return ``register(registry)``, calling it at most once per registry."""
    with _families_lock:
        groups = _families.setdefault(registry, {})
        families = groups.get(register)
        if families is None:
            families = register(registry)
            groups[register] = families
        return cast(F, families)


def exposition(registry: CollectorRegistry = REGISTRY) -> tuple[bytes, str]:
    """Return ``registry`` in the Prometheus text format, with its content type."""
    return generate_latest(registry), CONTENT_TYPE_LATEST


@final
class PrometheusMetricsProvider:
    """Records component metrics in a ``prometheus_client`` registry.

    Implements the work queue, reflector, controller, event recorder and client request
    provider protocols. Each group of families is registered in ``registry`` on first use (once
    per registry, whichever provider instance asks first); registering fails with
    ``ValueError`` if a collector outside pycontroller already owns one of the names. Two
    queues with the same ``name`` share their time series, as in client-go; for the
    callback gauges (``workqueue_depth``, ``workqueue_unfinished_work_seconds``,
    ``workqueue_longest_running_processor_seconds``)
    the queue created last wins.

    Args:
        registry: where to register the families; defaults to prometheus_client's global
            ``REGISTRY``. Tests pass a fresh ``CollectorRegistry()``.

    Thread-safety: thread-safe.

    Invariants: for a given registry, each family is constructed at most once.
    """

    def __init__(self, *, registry: CollectorRegistry = REGISTRY) -> None:
        self._registry = registry

    @property
    def registry(self) -> CollectorRegistry:
        """The registry the metrics are recorded in."""
        return self._registry

    def _wq(self) -> _WorkqueueFamilies:
        return _families_for(self._registry, _WorkqueueFamilies.register)

    def _rf(self) -> _ReflectorFamilies:
        return _families_for(self._registry, _ReflectorFamilies.register)

    def _ctl(self) -> _ControllerFamilies:
        return _families_for(self._registry, _ControllerFamilies.register)

    def _ev(self) -> _EventFamilies:
        return _families_for(self._registry, _EventFamilies.register)

    def new_depth_metric(self, name: str) -> FunctionGauge:
        """Return the ``workqueue_depth`` child for ``name``."""
        return self._wq().depth.labels(name)

    def new_adds_metric(self, name: str) -> Counter:
        """Return the ``workqueue_adds_total`` child for ``name``."""
        return self._wq().adds.labels(name)

    def new_latency_metric(self, name: str) -> Histogram:
        """Return the ``workqueue_queue_duration_seconds`` child for ``name``."""
        return self._wq().latency.labels(name)

    def new_work_duration_metric(self, name: str) -> Histogram:
        """Return the ``workqueue_work_duration_seconds`` child for ``name``."""
        return self._wq().work_duration.labels(name)

    def new_unfinished_work_seconds_metric(self, name: str) -> FunctionGauge:
        """Return the ``workqueue_unfinished_work_seconds`` child for ``name``."""
        return self._wq().unfinished_work_seconds.labels(name)

    def new_longest_running_processor_seconds_metric(self, name: str) -> FunctionGauge:
        """Return the ``workqueue_longest_running_processor_seconds`` child for ``name``."""
        return self._wq().longest_running_processor_seconds.labels(name)

    def new_retries_metric(self, name: str) -> Counter:
        """Return the ``workqueue_retries_total`` child for ``name``."""
        return self._wq().retries.labels(name)

    # -- reflector metrics (pycontroller.cache ReflectorMetricsProvider) -----------------

    def new_lists_metric(self, name: str) -> Counter:
        """Return the ``reflector_lists_total`` child for ``name``."""
        return self._rf().lists.labels(name)

    def new_relists_metric(self, name: str) -> Counter:
        """Return the ``reflector_relists_total`` child for ``name``."""
        return self._rf().relists.labels(name)

    def new_list_duration_metric(self, name: str) -> Histogram:
        """Return the ``reflector_list_duration_seconds`` child for ``name``."""
        return self._rf().list_duration.labels(name)

    def new_items_in_list_metric(self, name: str) -> Histogram:
        """Return the ``reflector_items_per_list`` child for ``name``."""
        return self._rf().items_per_list.labels(name)

    def new_watches_metric(self, name: str) -> Counter:
        """Return the ``reflector_watches_total`` child for ``name``."""
        return self._rf().watches.labels(name)

    def new_short_watches_metric(self, name: str) -> Counter:
        """Return the ``reflector_short_watches_total`` child for ``name``."""
        return self._rf().short_watches.labels(name)

    def new_watch_duration_metric(self, name: str) -> Histogram:
        """Return the ``reflector_watch_duration_seconds`` child for ``name``."""
        return self._rf().watch_duration.labels(name)

    def new_items_in_watch_metric(self, name: str) -> Histogram:
        """Return the ``reflector_items_per_watch`` child for ``name``."""
        return self._rf().items_per_watch.labels(name)

    def new_watch_errors_metric(self, name: str) -> Counter:
        """Return the ``reflector_watch_errors_total`` child for ``name``."""
        return self._rf().watch_errors.labels(name)

    def new_last_resource_version_metric(self, name: str) -> Gauge:
        """Return the ``reflector_last_resource_version`` child for ``name``."""
        return self._rf().last_resource_version.labels(name)

    def new_last_resource_version_timestamp_metric(self, name: str) -> Gauge:
        """Return the ``reflector_last_resource_version_timestamp_seconds`` child."""
        return self._rf().last_resource_version_timestamp.labels(name)

    def new_pending_notifications_metric(self, name: str) -> FunctionGauge:
        """Return the ``informer_pending_notifications`` child for handler ``name``."""
        return self._rf().pending_notifications.labels(name)

    def remove_pending_notifications_metric(self, name: str) -> None:
        """Remove handler ``name``'s ``informer_pending_notifications`` series, if any."""
        self._rf().pending_notifications.remove(name)  # no error when absent

    # -- controller metrics (pycontroller.controller ControllerMetricsProvider) ----------

    def new_reconcile_total_metric(self, controller: str, result: str) -> Counter:
        """Return the ``controller_runtime_reconcile_total`` child."""
        return self._ctl().reconcile_total.labels(controller, result)

    def new_reconcile_errors_metric(self, controller: str) -> Counter:
        """Return the ``controller_runtime_reconcile_errors_total`` child."""
        return self._ctl().reconcile_errors.labels(controller)

    def new_reconcile_time_metric(self, controller: str) -> Histogram:
        """Return the ``controller_runtime_reconcile_time_seconds`` child."""
        return self._ctl().reconcile_time.labels(controller)

    def new_active_workers_metric(self, controller: str) -> Gauge:
        """Return the ``controller_runtime_active_workers`` child."""
        return self._ctl().active_workers.labels(controller)

    def new_max_concurrent_reconciles_metric(self, controller: str) -> Gauge:
        """Return the ``controller_runtime_max_concurrent_reconciles`` child."""
        return self._ctl().max_concurrent.labels(controller)

    def new_terminal_errors_metric(self, controller: str) -> Counter:
        """Return the ``controller_runtime_terminal_reconcile_errors_total`` child."""
        return self._ctl().terminal_errors.labels(controller)

    def new_panics_metric(self, controller: str) -> Counter:
        """Return the ``controller_runtime_reconcile_panics_total`` child."""
        return self._ctl().panics.labels(controller)

    def new_timeouts_metric(self, controller: str) -> Counter:
        """Return the ``controller_runtime_reconcile_timeouts_total`` child."""
        return self._ctl().timeouts.labels(controller)

    def new_read_your_writes_waits_metric(self, controller: str) -> Counter:
        """Return the ``pycontroller_read_your_writes_waits_total`` child."""
        return self._ctl().ryow_waits.labels(controller)

    def new_read_your_writes_timeouts_metric(self, controller: str) -> Counter:
        """Return the ``pycontroller_read_your_writes_timeouts_total`` child."""
        return self._ctl().ryow_timeouts.labels(controller)

    def new_leader_election_status_metric(self, name: str) -> Gauge:
        """Return the ``leader_election_master_status`` child for lease ``name``."""
        return self._ctl().leader_status.labels(name)

    def new_informer_cache_items_metric(self, informer: str) -> FunctionGauge:
        """Return the ``informer_cache_items`` child for ``informer``."""
        return self._ctl().cache_items.labels(informer)

    # -- event recorder metrics (pycontroller.metrics EventsMetricsProvider) -------------

    def new_events_dropped_metric(self, component: str, reason: str) -> Counter:
        """Return the ``event_recorder_dropped_events_total`` child."""
        return self._ev().dropped.labels(component, reason)

    def new_event_writes_metric(self, component: str, verb: str) -> Counter:
        """Return the ``event_recorder_writes_total`` child."""
        return self._ev().writes.labels(component, verb)

    # -- client request metrics (pycontroller.client RequestMetricsProvider) -------------

    def observe_request(self, method: str, host: str, code: str, seconds: float) -> None:
        """Count a request in ``rest_client_requests_total`` and time it."""
        families = _families_for(self._registry, _RestClientFamilies.register)
        families.requests.labels(code, method, host).inc()
        families.latency.labels(method, host).observe(seconds)

    def observe_rate_limiter_wait(self, method: str, host: str, seconds: float) -> None:
        """Record a wait in ``rest_client_rate_limiter_duration_seconds``."""
        families = _families_for(self._registry, _RestClientFamilies.register)
        families.rate_limiter.labels(method, host).observe(seconds)
