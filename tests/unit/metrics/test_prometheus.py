"""The Prometheus provider: client-go names and meanings (spec §5.4, checklist 66)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from pycontroller.metrics import PrometheusMetricsProvider
from pycontroller.metrics import prometheus as prom_module
from pycontroller.metrics.prometheus import WORKQUEUE_DURATION_BUCKETS, exposition
from pycontroller.testing._fake_clock import FakeClock
from pycontroller.workqueue import DelayingQueue, RateLimitingQueue, WorkQueue

NAMES = [
    "workqueue_depth",
    "workqueue_adds_total",
    "workqueue_queue_duration_seconds",
    "workqueue_work_duration_seconds",
    "workqueue_unfinished_work_seconds",
    "workqueue_longest_running_processor_seconds",
    "workqueue_retries_total",
]


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def q(registry: CollectorRegistry, clock: FakeClock) -> Iterator[RateLimitingQueue[str]]:
    queue = RateLimitingQueue[str](
        name="pods", clock=clock, metrics=PrometheusMetricsProvider(registry=registry))
    yield queue
    queue.shut_down()


class Reader:
    def __init__(self, registry: CollectorRegistry, name: str = "pods") -> None:
        self.registry = registry
        self.name = name

    def __call__(self, metric: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(metric, {"name": self.name, **labels})


def test_families_have_client_go_names_and_buckets(
    q: RateLimitingQueue[str], registry: CollectorRegistry
) -> None:
    text = generate_latest(registry).decode()
    for name in NAMES:
        assert f"# TYPE {name} " in text
    assert WORKQUEUE_DURATION_BUCKETS == (
        1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
    assert 'workqueue_work_duration_seconds_bucket{le="1e-08",name="pods"}' in text


def test_depth_and_adds_count_non_duplicate_adds(
    q: RateLimitingQueue[str], registry: CollectorRegistry
) -> None:
    m = Reader(registry)
    q.add("a")
    q.add("a")
    q.add("b")
    assert m("workqueue_adds_total") == 2
    assert m("workqueue_depth") == 2
    assert q.get() == "a"
    assert m("workqueue_depth") == 1
    q.add("a")  # while processing: counted, and in depth, though not queued yet
    assert m("workqueue_adds_total") == 3
    assert m("workqueue_depth") == 2
    q.done("a")
    assert q.get() == "b"
    assert q.get() == "a"
    assert m("workqueue_depth") == 0


def test_queue_and_work_durations_use_the_queue_clock(
    q: RateLimitingQueue[str], registry: CollectorRegistry, clock: FakeClock
) -> None:
    m = Reader(registry)
    q.add("a")
    clock.step(0.5)
    q.add("a")  # a duplicate does not reset the add time
    clock.step(1.5)
    q.get()
    assert m("workqueue_queue_duration_seconds_count") == 1
    assert m("workqueue_queue_duration_seconds_sum") == pytest.approx(2.0)
    assert m("workqueue_queue_duration_seconds_bucket", le="1.0") == 0
    assert m("workqueue_queue_duration_seconds_bucket", le="10.0") == 1
    clock.step(3.0)
    q.done("a")
    assert m("workqueue_work_duration_seconds_count") == 1
    assert m("workqueue_work_duration_seconds_sum") == pytest.approx(3.0)


def test_unfinished_and_longest_are_computed_when_collected(
    q: RateLimitingQueue[str], registry: CollectorRegistry, clock: FakeClock
) -> None:
    m = Reader(registry)
    assert m("workqueue_unfinished_work_seconds") == 0
    assert m("workqueue_longest_running_processor_seconds") == 0
    q.add("a")
    q.add("b")
    q.get()
    clock.step(2.0)
    q.get()
    clock.step(1.0)
    assert m("workqueue_unfinished_work_seconds") == pytest.approx(3.0 + 1.0)
    assert m("workqueue_longest_running_processor_seconds") == pytest.approx(3.0)
    q.done("a")
    assert m("workqueue_unfinished_work_seconds") == pytest.approx(1.0)
    assert m("workqueue_longest_running_processor_seconds") == pytest.approx(1.0)
    q.done("b")
    assert m("workqueue_unfinished_work_seconds") == 0


def test_retries_count_add_after_and_add_rate_limited(
    q: RateLimitingQueue[str], registry: CollectorRegistry
) -> None:
    m = Reader(registry)
    q.add_after("a", 0.0)
    q.add_after("b", 10.0)
    q.add_rate_limited("c")
    assert m("workqueue_retries_total") == 3
    q.shut_down()
    q.add_after("d", 1.0)  # ignored after shutdown, not counted
    assert m("workqueue_retries_total") == 3


def test_two_queues_share_a_registry_without_clashing(registry: CollectorRegistry) -> None:
    provider = PrometheusMetricsProvider(registry=registry)
    other = PrometheusMetricsProvider(registry=registry)
    q1 = WorkQueue[str](name="one", metrics=provider)
    q2 = DelayingQueue[str](name="two", metrics=other)
    q1.add("a")
    q2.add("a")
    q2.add("b")
    assert Reader(registry, "one")("workqueue_adds_total") == 1
    assert Reader(registry, "two")("workqueue_adds_total") == 2
    q1.shut_down()
    q2.shut_down()


def test_unnamed_queue_records_nothing(registry: CollectorRegistry) -> None:
    q = WorkQueue[str](metrics=PrometheusMetricsProvider(registry=registry))
    q.add("a")
    assert registry.get_sample_value("workqueue_adds_total", {"name": ""}) is None
    assert "workqueue" not in generate_latest(registry).decode()
    q.shut_down()


def test_a_named_queue_without_a_provider_registers_nothing_globally() -> None:
    """Issue 8: a named queue without a provider used to register in the global REGISTRY."""
    q = WorkQueue[str](name="pycontroller-test-default-registry")
    q.add("a")
    assert REGISTRY.get_sample_value(
        "workqueue_adds_total", {"name": "pycontroller-test-default-registry"}) is None
    assert "pycontroller-test-default-registry" not in generate_latest(REGISTRY).decode()
    q.shut_down()


def test_a_discarded_queue_reports_zero_and_is_not_kept_alive(
    registry: CollectorRegistry, clock: FakeClock
) -> None:
    q = WorkQueue[str](
        name="gone", clock=clock, metrics=PrometheusMetricsProvider(registry=registry))
    q.add("a")
    q.get()
    clock.step(5.0)
    assert Reader(registry, "gone")("workqueue_unfinished_work_seconds") == 5.0
    del q
    gc.collect()
    assert Reader(registry, "gone")("workqueue_unfinished_work_seconds") == 0.0


def test_family_cache_forgets_a_collected_registry() -> None:
    registry = CollectorRegistry()
    q = WorkQueue[str](name="x", metrics=PrometheusMetricsProvider(registry=registry))
    q.shut_down()
    assert registry in prom_module._families
    before = len(prom_module._families)
    del q, registry
    gc.collect()
    assert len(prom_module._families) == before - 1


def test_name_owned_by_someone_else_is_an_error(registry: CollectorRegistry) -> None:
    from prometheus_client import Gauge

    Gauge("workqueue_depth", "not ours", registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        WorkQueue[str](name="q", metrics=PrometheusMetricsProvider(registry=registry))


def test_reflector_metrics_share_the_registry(registry: CollectorRegistry) -> None:
    provider = PrometheusMetricsProvider(registry=registry)
    provider.new_lists_metric("pods").inc()
    provider.new_list_duration_metric("pods").observe(0.2)
    provider.new_items_in_list_metric("pods").observe(500)
    provider.new_watches_metric("pods").inc()
    provider.new_short_watches_metric("pods").inc()
    provider.new_relists_metric("pods").inc()
    provider.new_watch_duration_metric("pods").observe(300)
    provider.new_items_in_watch_metric("pods").observe(3)
    provider.new_watch_errors_metric("pods").inc()
    provider.new_last_resource_version_metric("pods").set(42)
    provider.new_last_resource_version_timestamp_metric("pods").set(1.5e9)
    # A second provider on the same registry reuses the families.
    PrometheusMetricsProvider(registry=registry).new_lists_metric("pods").inc()
    m = Reader(registry)
    assert m("reflector_lists_total") == 2
    assert m("reflector_list_duration_seconds_count") == 1
    assert m("reflector_items_per_list_sum") == 500
    assert m("reflector_last_resource_version") == 42
    assert m("reflector_last_resource_version_timestamp_seconds") == 1.5e9
    for name in ("reflector_watches_total", "reflector_short_watches_total",
                 "reflector_relists_total", "reflector_watch_errors_total",
                 "reflector_watch_duration_seconds_count", "reflector_items_per_watch_count"):
        assert m(name) == 1, name


def test_controller_metrics_use_controller_runtime_names(registry: CollectorRegistry) -> None:
    provider = PrometheusMetricsProvider(registry=registry)
    provider.new_reconcile_total_metric("pods", "success").inc()
    provider.new_reconcile_errors_metric("pods").inc()
    provider.new_reconcile_time_metric("pods").observe(0.3)
    value = registry.get_sample_value
    assert value("controller_runtime_reconcile_total",
                 {"controller": "pods", "result": "success"}) == 1
    assert value("controller_runtime_reconcile_errors_total", {"controller": "pods"}) == 1
    assert value("controller_runtime_reconcile_time_seconds_count", {"controller": "pods"}) == 1


def test_exposition_renders_the_registry(
    q: RateLimitingQueue[str], registry: CollectorRegistry
) -> None:
    q.add("a")
    body, content_type = exposition(registry)
    assert b'workqueue_adds_total{name="pods"} 1.0' in body
    assert content_type.startswith("text/plain")
