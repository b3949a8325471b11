"""Metric protocols and the no-op provider (≙ client-go util/workqueue/metrics.go).

Components never talk to a metrics library directly. They take a provider (``metrics=``)
and ask it once, at construction, for one metric object per metric they record; after
that they only call ``inc``/``dec``/``set``/``observe`` on those objects. The protocols
below are the whole contract, so a provider for another metrics system (OpenTelemetry,
statsd) is a class with these factory methods.

Data flow: component (e.g. a named ``WorkQueue``) → provider factory → metric objects →
the metrics backend (``pycontroller.metrics.prometheus`` by default).

Extending: each component has a ``<Component>MetricsProvider`` protocol with one
``new_<metric>(name)`` factory per metric: ``WorkqueueMetricsProvider`` here, the reflector's
and the controller's (so far) next to their components. ``NoopMetricsProvider`` and
``PrometheusMetricsProvider`` implement every such protocol.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, final


class Counter(Protocol):
    """A monotonically increasing value.

    Thread-safety: implementations must be thread-safe.
    """

    def inc(self, amount: float = 1.0, /) -> None:
        """Add ``amount`` (≥ 0)."""
        ...


class Gauge(Protocol):
    """A value that goes up and down.

    Thread-safety: implementations must be thread-safe.
    """

    def inc(self, amount: float = 1.0, /) -> None:
        """Add ``amount``."""
        ...

    def dec(self, amount: float = 1.0, /) -> None:
        """Subtract ``amount``."""
        ...

    def set(self, value: float, /) -> None:
        """Set the value."""
        ...


class FunctionGauge(Protocol):
    """A gauge whose value is computed by a callback each time it is read (scraped).

    Used instead of client-go's 500 ms updater goroutine (and instead of inc/dec on every
    add and get for the depth): the value is exact at collection time, no thread is
    needed and the queue's hot path makes no call. The callback may take the component's
    lock briefly, so the backend must not call it while holding a lock of its own that a
    component could need.

    Thread-safety: implementations must be thread-safe; the callback may be called from
    any thread.
    """

    def set_function(self, fn: Callable[[], float], /) -> None:
        """Report ``fn()`` as the value from now on (replacing any earlier callback)."""
        ...


class Histogram(Protocol):
    """A distribution of observed values (durations in seconds here).

    Thread-safety: implementations must be thread-safe.
    """

    def observe(self, value: float, /) -> None:
        """Record one observation."""
        ...


class WorkqueueMetricsProvider(Protocol):
    """Creates the metrics of one named work queue (≙ client-go ``MetricsProvider``).

    Each factory is called once per queue, with the queue's ``name``; a provider may
    return the same object for the same name. Meanings follow client-go:

    * depth: dirty items not yet handed out by ``get`` (client-go: +1 on a non-duplicate
      add, -1 on get; here the same number is read from the queue when collected);
    * adds: non-duplicate adds;
    * latency: seconds from the first add (since the last get) to get;
    * work duration: seconds from get to done;
    * unfinished work seconds: sum of the ages of the items being processed;
    * longest running processor seconds: age of the oldest item being processed;
    * retries: ``add_after``/``add_rate_limited`` calls.

    Thread-safety: factories may be called from any thread.
    """

    def new_depth_metric(self, name: str) -> FunctionGauge:
        """Gauge ``workqueue_depth`` (computed when read)."""
        ...

    def new_adds_metric(self, name: str) -> Counter:
        """Counter ``workqueue_adds_total``."""
        ...

    def new_latency_metric(self, name: str) -> Histogram:
        """Histogram ``workqueue_queue_duration_seconds``."""
        ...

    def new_work_duration_metric(self, name: str) -> Histogram:
        """Histogram ``workqueue_work_duration_seconds``."""
        ...

    def new_unfinished_work_seconds_metric(self, name: str) -> FunctionGauge:
        """Gauge ``workqueue_unfinished_work_seconds`` (computed when read)."""
        ...

    def new_longest_running_processor_seconds_metric(self, name: str) -> FunctionGauge:
        """Gauge ``workqueue_longest_running_processor_seconds`` (computed when read)."""
        ...

    def new_retries_metric(self, name: str) -> Counter:
        """Counter ``workqueue_retries_total``."""
        ...


class ReflectorMetricsProvider(Protocol):
    """Factories for a Reflector's metrics (``pycontroller.cache``), labelled by ``name``."""

    def new_lists_metric(self, name: str) -> Counter:
        """LIST (or WatchList) syncs completed."""
        ...

    def new_relists_metric(self, name: str) -> Counter:
        """Syncs after the first one (after 410, errors, short watches)."""
        ...

    def new_list_duration_metric(self, name: str) -> Histogram:
        """Seconds per completed LIST."""
        ...

    def new_items_in_list_metric(self, name: str) -> Histogram:
        """Items per completed LIST."""
        ...

    def new_watches_metric(self, name: str) -> Counter:
        """WATCH requests opened."""
        ...

    def new_short_watches_metric(self, name: str) -> Counter:
        """Watches that closed within a second with no event."""
        ...

    def new_watch_duration_metric(self, name: str) -> Histogram:
        """Seconds per watch stream."""
        ...

    def new_items_in_watch_metric(self, name: str) -> Histogram:
        """Events per watch stream."""
        ...

    def new_watch_errors_metric(self, name: str) -> Counter:
        """Errors the reflector recovered from (logged with their kind)."""
        ...

    def new_last_resource_version_metric(self, name: str) -> Gauge:
        """The last resourceVersion seen, when numeric."""
        ...

    def new_last_resource_version_timestamp_metric(self, name: str) -> Gauge:
        """Unix time when the resourceVersion last advanced."""
        ...

    def new_pending_notifications_metric(self, name: str) -> FunctionGauge:
        """Notifications buffered for event handler ``name`` (computed when read)."""
        ...

    def remove_pending_notifications_metric(self, name: str) -> None:
        """Forget handler ``name``'s series: its handler was removed.

        Handler names are never reused, so without this a program that adds and removes
        handlers would grow its series without bound. A provider written before this
        method existed still works: the informer keeps its series and logs at debug level.
        """
        ...


class ControllerMetricsProvider(Protocol):
    """Factories for one controller's metrics."""

    def new_reconcile_total_metric(self, controller: str, result: str) -> Counter:
        """Reconciles finished with ``result``."""
        ...

    def new_reconcile_errors_metric(self, controller: str) -> Counter:
        """Reconciles that raised."""
        ...

    def new_reconcile_time_metric(self, controller: str) -> Histogram:
        """Seconds per reconcile."""
        ...

    def new_active_workers_metric(self, controller: str) -> Gauge:
        """Workers currently running a reconcile."""
        ...

    def new_max_concurrent_reconciles_metric(self, controller: str) -> Gauge:
        """The configured number of workers."""
        ...

    def new_terminal_errors_metric(self, controller: str) -> Counter:
        """Reconciles that raised ``TerminalError`` (never retried)."""
        ...

    def new_panics_metric(self, controller: str) -> Counter:
        """Reconciles that raised an unexpected exception (not a pycontroller ``Error``)."""
        ...

    def new_timeouts_metric(self, controller: str) -> Counter:
        """Reconciles that ran past the controller's ``reconcile_timeout``."""
        ...

    def new_read_your_writes_waits_metric(self, controller: str) -> Counter:
        """Reconciles that waited for the cache to catch up with the controller's writes."""
        ...

    def new_read_your_writes_timeouts_metric(self, controller: str) -> Counter:
        """Such waits that hit their bound (the reconcile then ran on the older cache)."""
        ...

    def new_leader_election_status_metric(self, name: str) -> Gauge:
        """1 while this process leads the lease ``name``, else 0."""
        ...

    def new_informer_cache_items_metric(self, informer: str) -> FunctionGauge:
        """Objects in the cache of ``informer`` (computed when read)."""
        ...


class EventsMetricsProvider(Protocol):
    """Factories for an ``EventRecorder``'s metrics, labelled by its ``component``."""

    def new_events_dropped_metric(self, component: str, reason: str) -> Counter:
        """Events not written: ``buffer_full``, ``rate_limited``, ``write_failed``,
        ``stopped``."""
        ...

    def new_event_writes_metric(self, component: str, verb: str) -> Counter:
        """Event writes sent to the API server: ``create`` or ``patch`` (series)."""
        ...


@final
class _NoopMetric:
    """Satisfies every metric protocol and records nothing."""

    __slots__ = ()

    def inc(self, amount: float = 1.0, /) -> None:
        pass

    def dec(self, amount: float = 1.0, /) -> None:
        pass

    def set(self, value: float, /) -> None:
        pass

    def observe(self, value: float, /) -> None:
        pass

    def set_function(self, fn: Callable[[], float], /) -> None:
        pass


_NOOP_METRIC = _NoopMetric()


@final
class NoopMetricsProvider:
    """A provider whose metrics record nothing (implements every provider protocol).

    Work queues recognise it and skip metric bookkeeping entirely, so passing it costs
    nothing on their hot paths.

    Thread-safety: stateless, thread-safe.
    """

    def new_depth_metric(self, name: str) -> FunctionGauge:
        """Return a no-op function gauge."""
        return _NOOP_METRIC

    def new_adds_metric(self, name: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_latency_metric(self, name: str) -> Histogram:
        """Return a no-op histogram."""
        return _NOOP_METRIC

    def new_work_duration_metric(self, name: str) -> Histogram:
        """Return a no-op histogram."""
        return _NOOP_METRIC

    def new_unfinished_work_seconds_metric(self, name: str) -> FunctionGauge:
        """Return a no-op function gauge."""
        return _NOOP_METRIC

    def new_longest_running_processor_seconds_metric(self, name: str) -> FunctionGauge:
        """Return a no-op function gauge."""
        return _NOOP_METRIC

    def new_retries_metric(self, name: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    # -- reflector metrics (pycontroller.cache ReflectorMetricsProvider) -----------------

    def new_lists_metric(self, name: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_relists_metric(self, name: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_list_duration_metric(self, name: str) -> Histogram:
        """Return a no-op histogram."""
        return _NOOP_METRIC

    def new_items_in_list_metric(self, name: str) -> Histogram:
        """Return a no-op histogram."""
        return _NOOP_METRIC

    def new_watches_metric(self, name: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_short_watches_metric(self, name: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_watch_duration_metric(self, name: str) -> Histogram:
        """Return a no-op histogram."""
        return _NOOP_METRIC

    def new_items_in_watch_metric(self, name: str) -> Histogram:
        """Return a no-op histogram."""
        return _NOOP_METRIC

    def new_watch_errors_metric(self, name: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_last_resource_version_metric(self, name: str) -> Gauge:
        """Return a no-op gauge."""
        return _NOOP_METRIC

    def new_last_resource_version_timestamp_metric(self, name: str) -> Gauge:
        """Return a no-op gauge."""
        return _NOOP_METRIC

    def new_pending_notifications_metric(self, name: str) -> FunctionGauge:
        """Return a no-op function gauge."""
        return _NOOP_METRIC

    def remove_pending_notifications_metric(self, name: str) -> None:
        """Do nothing."""

    # -- controller metrics (pycontroller.controller ControllerMetricsProvider) ----------

    def new_reconcile_total_metric(self, controller: str, result: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_reconcile_errors_metric(self, controller: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_reconcile_time_metric(self, controller: str) -> Histogram:
        """Return a no-op histogram."""
        return _NOOP_METRIC

    def new_active_workers_metric(self, controller: str) -> Gauge:
        """Return a no-op gauge."""
        return _NOOP_METRIC

    def new_max_concurrent_reconciles_metric(self, controller: str) -> Gauge:
        """Return a no-op gauge."""
        return _NOOP_METRIC

    def new_terminal_errors_metric(self, controller: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_panics_metric(self, controller: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_timeouts_metric(self, controller: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_read_your_writes_waits_metric(self, controller: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_read_your_writes_timeouts_metric(self, controller: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_leader_election_status_metric(self, name: str) -> Gauge:
        """Return a no-op gauge."""
        return _NOOP_METRIC

    def new_informer_cache_items_metric(self, informer: str) -> FunctionGauge:
        """Return a no-op function gauge."""
        return _NOOP_METRIC

    # -- event recorder metrics (EventsMetricsProvider) ----------------------------------

    def new_events_dropped_metric(self, component: str, reason: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC

    def new_event_writes_metric(self, component: str, verb: str) -> Counter:
        """Return a no-op counter."""
        return _NOOP_METRIC
