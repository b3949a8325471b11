"""Client-side rate limiting and rest_client_* metrics, against the real apiserver."""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest
from prometheus_client import CollectorRegistry

from pycontroller import CONFIGMAPS, Manager, connect
from pycontroller.envtest import ControlPlane
from pycontroller.errors import NotFoundError
from pycontroller.metrics.prometheus import PrometheusMetricsProvider

pytestmark = pytest.mark.integration


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_requests_are_counted_and_timed_under_client_go_names(
        kube_envtest: ControlPlane, kube_namespace: str) -> None:
    registry = CollectorRegistry()
    host = urlparse(kube_envtest.server).netloc
    with connect(kube_envtest.kubeconfig,
                 metrics=PrometheusMetricsProvider(registry=registry)) as client:
        for _ in range(3):
            client.list(CONFIGMAPS, kube_namespace)
        with pytest.raises(NotFoundError):
            client.get(CONFIGMAPS, "missing", kube_namespace)
    assert sample(registry, "rest_client_requests_total", code="200", method="GET",
                  host=host) == 3
    assert sample(registry, "rest_client_requests_total", code="404", method="GET",
                  host=host) == 1
    assert sample(registry, "rest_client_request_duration_seconds_count", verb="GET",
                  host=host) == 4
    # No limiter configured: nothing waited.
    assert sample(registry, "rest_client_rate_limiter_duration_seconds_count", verb="GET",
                  host=host) == 0


def test_qps_and_burst_limit_the_request_rate(kube_envtest: ControlPlane,
                                              kube_namespace: str) -> None:
    registry = CollectorRegistry()
    host = urlparse(kube_envtest.server).netloc
    with connect(kube_envtest.kubeconfig, qps=5, burst=2,
                 metrics=PrometheusMetricsProvider(registry=registry)) as client:
        started = time.monotonic()
        for _ in range(7):
            client.list(CONFIGMAPS, kube_namespace)
        elapsed = time.monotonic() - started
    # 2 free, then 5 more at 5 per second: at least 1 s, however fast the server is.
    assert elapsed >= 0.95, elapsed
    assert sample(registry, "rest_client_rate_limiter_duration_seconds_count", verb="GET",
                  host=host) == 7
    assert sample(registry, "rest_client_rate_limiter_duration_seconds_sum", verb="GET",
                  host=host) > 0  # the waits (shorter by the time the requests took)


def test_a_manager_records_its_clients_requests(kube_envtest: ControlPlane) -> None:
    registry = CollectorRegistry()
    with connect(kube_envtest.kubeconfig) as client:
        assert client.metrics is None
        Manager(client, registry=registry, metrics_bind_address=None,
                health_probe_bind_address=None, handle_signals=False)
        client.list(CONFIGMAPS, "default")
    assert sample(registry, "rest_client_requests_total", code="200", method="GET",
                  host=urlparse(kube_envtest.server).netloc) == 1

