"""The metrics a Client records per request, under client-go's names (rest_client_*).

Names in the Prometheus provider: ``rest_client_requests_total`` (labels ``code``,
``method``, ``host``; ``code`` is ``<error>`` when no HTTP answer came),
``rest_client_request_duration_seconds`` (labels ``verb``, ``host``; for a watch, the time
until the response headers) and ``rest_client_rate_limiter_duration_seconds`` (labels
``verb``, ``host``; the time spent waiting for the client-side rate limiter).
"""

from __future__ import annotations

from typing import Protocol


class RequestMetricsProvider(Protocol):
    """Receives one observation per request. Implementations must be thread-safe."""

    def observe_request(self, method: str, host: str, code: str, seconds: float) -> None:
        """A request finished (``code``: the HTTP status, or ``<error>``)."""
        ...

    def observe_rate_limiter_wait(self, method: str, host: str, seconds: float) -> None:
        """A request waited ``seconds`` for the client-side rate limiter."""
        ...
