"""Controller metrics, named as controller-runtime's so existing dashboards work.

``controller_runtime_reconcile_total{controller,result}`` (result: success, error,
requeue, requeue_after), ``controller_runtime_reconcile_errors_total{controller}``,
``controller_runtime_reconcile_time_seconds{controller}``,
``controller_runtime_terminal_reconcile_errors_total``,
``controller_runtime_reconcile_panics_total`` (unexpected exceptions: anything but a
pycontroller ``Error``), ``controller_runtime_reconcile_timeouts_total``,
``controller_runtime_active_workers``, ``controller_runtime_max_concurrent_reconciles``,
and pycontroller's ``pycontroller_read_your_writes_{waits,timeouts}_total``.
"""

from __future__ import annotations

from typing import final

from pycontroller.metrics._provider import ControllerMetricsProvider, NoopMetricsProvider

RESULTS = ("success", "error", "requeue", "requeue_after")


@final
class ControllerMetrics:
    """The metric objects of one controller; a ``None`` provider records nothing.

    Thread-safety: thread-safe if the provider's metrics are.
    """

    def __init__(self, provider: ControllerMetricsProvider | None, controller: str) -> None:
        p: ControllerMetricsProvider = provider or NoopMetricsProvider()
        self._totals = {r: p.new_reconcile_total_metric(controller, r) for r in RESULTS}
        self._errors = p.new_reconcile_errors_metric(controller)
        self._time = p.new_reconcile_time_metric(controller)
        self.active_workers = p.new_active_workers_metric(controller)
        self.max_concurrent = p.new_max_concurrent_reconciles_metric(controller)
        self.terminal_errors = p.new_terminal_errors_metric(controller)
        self.panics = p.new_panics_metric(controller)
        self.timeouts = p.new_timeouts_metric(controller)
        self.ryow_waits = p.new_read_your_writes_waits_metric(controller)
        self.ryow_timeouts = p.new_read_your_writes_timeouts_metric(controller)

    def reconciled(self, result: str, seconds: float) -> None:
        """One reconcile finished."""
        self._totals[result].inc()
        self._time.observe(seconds)
        if result == "error":
            self._errors.inc()
