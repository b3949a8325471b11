"""Controller metrics, named as controller-runtime's so existing dashboards work.

``controller_runtime_reconcile_total{controller,result}`` (result: success, error,
requeue, requeue_after), ``controller_runtime_reconcile_errors_total{controller}``,
``controller_runtime_reconcile_time_seconds{controller}``.
"""

from __future__ import annotations

from typing import final

from pycontroller.metrics._provider import ControllerMetricsProvider

RESULTS = ("success", "error", "requeue", "requeue_after")


@final
class ControllerMetrics:
    """The metric objects of one controller; a ``None`` provider records nothing.

    Thread-safety: thread-safe if the provider's metrics are.
    """

    def __init__(self, provider: ControllerMetricsProvider | None, controller: str) -> None:
        self._on = provider is not None
        if provider is None:
            return
        self._totals = {r: provider.new_reconcile_total_metric(controller, r) for r in RESULTS}
        self._errors = provider.new_reconcile_errors_metric(controller)
        self._time = provider.new_reconcile_time_metric(controller)

    def reconciled(self, result: str, seconds: float) -> None:
        """One reconcile finished."""
        if self._on:
            self._totals[result].inc()
            self._time.observe(seconds)
            if result == "error":
                self._errors.inc()
