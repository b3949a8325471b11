"""The metrics a Reflector records, through an injected provider (client-go defines but
no longer records these; we do).

Names in the Prometheus provider: ``reflector_lists_total``, ``reflector_relists_total``,
``reflector_list_duration_seconds``, ``reflector_items_per_list``, ``reflector_watches_total``,
``reflector_short_watches_total``, ``reflector_watch_duration_seconds``,
``reflector_items_per_watch``, ``reflector_watch_errors_total``,
``reflector_last_resource_version``, ``reflector_last_resource_version_timestamp_seconds``
(age = now - this), each labelled by reflector ``name``.
"""

from __future__ import annotations

import time
from typing import final

from pycontroller.metrics._provider import ReflectorMetricsProvider

__all__ = ["ReflectorMetrics", "ReflectorMetricsProvider"]


@final
class ReflectorMetrics:
    """The metric objects of one reflector; a ``None`` provider records nothing.

    Thread-safety: thread-safe if the provider's metrics are.
    """

    def __init__(self, provider: ReflectorMetricsProvider | None, name: str) -> None:
        self._on = provider is not None and bool(name)
        if provider is None or not name:
            return
        self._lists = provider.new_lists_metric(name)
        self._relists = provider.new_relists_metric(name)
        self._list_duration = provider.new_list_duration_metric(name)
        self._list_items = provider.new_items_in_list_metric(name)
        self._watches = provider.new_watches_metric(name)
        self._short = provider.new_short_watches_metric(name)
        self._watch_duration = provider.new_watch_duration_metric(name)
        self._watch_items = provider.new_items_in_watch_metric(name)
        self._errors = provider.new_watch_errors_metric(name)
        self._last_rv = provider.new_last_resource_version_metric(name)
        self._last_rv_time = provider.new_last_resource_version_timestamp_metric(name)

    @classmethod
    def noop(cls) -> ReflectorMetrics:
        """Metrics that record nothing."""
        return cls(None, "")

    def list_done(self, seconds: float, items: int) -> None:
        """A LIST completed."""
        if self._on:
            self._lists.inc()
            self._list_duration.observe(seconds)
            self._list_items.observe(items)

    def relist(self) -> None:
        """A list after the first successful one (a relist) started."""
        if self._on:
            self._relists.inc()

    def watch_started(self) -> None:
        """A WATCH was opened."""
        if self._on:
            self._watches.inc()

    def watch_done(self, seconds: float, items: int) -> None:
        """A watch stream ended."""
        if self._on:
            self._watch_duration.observe(seconds)
            self._watch_items.observe(items)

    def short_watch(self) -> None:
        """A watch ended at once with no events."""
        if self._on:
            self._short.inc()

    def watch_error(self) -> None:
        """An error was recovered from."""
        if self._on:
            self._errors.inc()

    def resource_version_advanced(self, rv: str, now: float) -> None:
        """The last applied resourceVersion moved to ``rv``."""
        if self._on:
            if rv.isdigit():
                self._last_rv.set(float(rv))
            self._last_rv_time.set(time.time())
