"""Metric protocols and providers for pycontroller components.

``PrometheusMetricsProvider`` lives in ``pycontroller.metrics.prometheus`` (the only module
that imports ``prometheus_client``) and is re-exported here.
"""

from __future__ import annotations

from pycontroller.metrics._provider import (
    ControllerMetricsProvider,
    Counter,
    EventsMetricsProvider,
    FunctionGauge,
    Gauge,
    Histogram,
    NoopMetricsProvider,
    ReflectorMetricsProvider,
    WorkqueueMetricsProvider,
)
from pycontroller.metrics.prometheus import PrometheusMetricsProvider

__all__ = [
    "ControllerMetricsProvider",
    "Counter",
    "EventsMetricsProvider",
    "FunctionGauge",
    "Gauge",
    "Histogram",
    "NoopMetricsProvider",
    "PrometheusMetricsProvider",
    "ReflectorMetricsProvider",
    "WorkqueueMetricsProvider",
]

for _name in __all__:
    _obj = globals()[_name]
    if getattr(_obj, "__module__", "").startswith("pycontroller.metrics."):
        _obj.__module__ = __name__
del _name, _obj
