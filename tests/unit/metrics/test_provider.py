"""Metric protocols and the no-op provider."""

from __future__ import annotations

import pycontroller.metrics as metrics_pkg
from pycontroller.metrics import (
    Counter,
    FunctionGauge,
    Gauge,
    Histogram,
    NoopMetricsProvider,
    WorkqueueMetricsProvider,
)
from pycontroller.metrics._provider import _NoopMetric
from pycontroller.workqueue import RateLimitingQueue, WorkQueue


def test_noop_provider_returns_metrics_that_accept_every_call() -> None:
    provider: WorkqueueMetricsProvider = NoopMetricsProvider()
    depth: FunctionGauge = provider.new_depth_metric("q")
    adds: Counter = provider.new_adds_metric("q")
    latency: Histogram = provider.new_latency_metric("q")
    work: Histogram = provider.new_work_duration_metric("q")
    unfinished: FunctionGauge = provider.new_unfinished_work_seconds_metric("q")
    longest: FunctionGauge = provider.new_longest_running_processor_seconds_metric("q")
    retries: Counter = provider.new_retries_metric("q")
    depth.set_function(lambda: 1.0)
    adds.inc()
    latency.observe(0.1)
    work.observe(0.2)
    unfinished.set_function(lambda: 1.0)
    gauge: Gauge = _NoopMetric()  # the one no-op object satisfies every protocol
    gauge.inc()
    gauge.dec(2.0)
    gauge.set(3.0)
    longest.set_function(lambda: 1.0)
    retries.inc(1.0)


def test_named_queue_with_noop_provider_keeps_no_bookkeeping() -> None:
    q = WorkQueue[str](name="noop", metrics=NoopMetricsProvider())
    assert q._metrics is None  # white-box: the hot path skips metrics entirely
    q.add("a")
    assert q.get() == "a"
    q.done("a")
    q.shut_down()


def test_unnamed_queue_keeps_no_bookkeeping_even_with_a_provider() -> None:
    class Exploding:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"unnamed queue asked the provider for {name}")

    q = RateLimitingQueue[str](metrics=Exploding())  # type: ignore[arg-type]
    assert q._metrics is None
    q.add_after("a", 0.0)
    q.shut_down()


def test_public_api_is_exactly_all() -> None:
    public = {n for n in dir(metrics_pkg) if not n.startswith(("_", "@"))}
    public -= {"annotations", "prometheus"}
    assert public == set(metrics_pkg.__all__)
    for name in metrics_pkg.__all__:
        assert getattr(metrics_pkg, name).__module__ == "pycontroller.metrics"


def test_noop_provider_covers_reflector_and_controller_metrics() -> None:
    provider = NoopMetricsProvider()
    provider.new_lists_metric("r").inc()
    provider.new_relists_metric("r").inc()
    provider.new_list_duration_metric("r").observe(1.0)
    provider.new_items_in_list_metric("r").observe(1.0)
    provider.new_watches_metric("r").inc()
    provider.new_short_watches_metric("r").inc()
    provider.new_watch_duration_metric("r").observe(1.0)
    provider.new_items_in_watch_metric("r").observe(1.0)
    provider.new_watch_errors_metric("r").inc()
    provider.new_last_resource_version_metric("r").set(1.0)
    provider.new_last_resource_version_timestamp_metric("r").set(1.0)
    provider.new_reconcile_total_metric("c", "success").inc()
    provider.new_reconcile_errors_metric("c").inc()
    provider.new_reconcile_time_metric("c").observe(1.0)
