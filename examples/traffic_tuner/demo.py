"""The ``--local`` workload: a Service whose (served-here) request counter alternates
between quiet and busy phases, and the ConfigMap the tuner adjusts."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pycontroller import CONFIGMAPS, NAMESPACES, SERVICES
from pycontroller.cli import LocalCluster
from pycontroller.errors import ConflictError

from . import config as c

NAMESPACE = "demo"


class CounterServer:
    """A Prometheus text endpoint on 127.0.0.1 whose counter grows at ``rps`` per second
    (change it at any time); ``mode`` "ok", "error" (HTTP 500), "garbage" or "slow".

    Thread-safe: requests are served on their own threads; the counter is guarded by a
    lock, ``mode`` is a plain attribute read once per request."""

    def __init__(self, rps: float = 0.0) -> None:
        self.rps, self.mode, self.value = rps, "ok", 0.0
        self.times: deque[float] = deque(maxlen=1000)  # monotonic times of the last requests
        self._count = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()
        self.release = threading.Event()  # ends "slow" answers
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body, status = outer._answer()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                with contextlib.suppress(OSError):  # a client that timed out has gone
                    self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/metrics"
        threading.Thread(target=self._server.serve_forever, daemon=True,
                         name="traffic-tuner-demo-metrics").start()

    @property
    def requests(self) -> int:
        """Requests answered so far."""
        with self._lock:
            return self._count

    def set_rps(self, rps: float) -> None:
        """From now on the counter grows at ``rps`` per second."""
        with self._lock:
            self._advance()
            self.rps = rps

    def reset(self) -> None:
        """The serving process restarted: the counter starts again from 0."""
        with self._lock:
            self._advance()
            self.value = 0.0

    def _advance(self) -> None:
        now = time.monotonic()
        self.value += self.rps * (now - self._last)
        self._last = now

    def _answer(self) -> tuple[bytes, int]:
        with self._lock:
            self.times.append(time.monotonic())
            self._count += 1
            self._advance()
            mode, value = self.mode, self.value
        if mode == "error":
            return b"internal error\n", 500
        if mode == "garbage":
            return b"http_requests_total{code=\"200\" this is not exposition text\n", 200
        if mode == "slow":
            self.release.wait(30)
        text = ("# HELP http_requests_total Requests served.\n"
                "# TYPE http_requests_total counter\n"
                f'http_requests_total{{code="200"}} {value * 0.9}\n'
                f'http_requests_total{{code="500"}} {value * 0.1}\n')
        return text.encode(), 200

    def close(self) -> None:
        """Stop serving."""
        self.release.set()
        self._server.shutdown()
        self._server.server_close()


def tuned_annotations(url: str, configmap: str, **extra: str) -> dict[str, str]:
    """The annotations of a tuned Service."""
    return {c.METRICS_URL: url, c.COUNTER: "http_requests_total", c.THRESHOLD: "10",
            c.CONFIGMAP: configmap, c.KEY: "mode", c.HIGH: "busy", c.NORMAL: "quiet", **extra}


def start(cluster: LocalCluster, stop: threading.Event) -> None:
    """A Service ``web`` and ConfigMap ``web-tuning`` in ``demo``; traffic alternates every
    20 s between 3 and 25 requests per second."""
    client = cluster.client
    with contextlib.suppress(ConflictError):
        client.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
    server = CounterServer(rps=3)
    client.create(CONFIGMAPS, {"metadata": {"name": "web-tuning"},
                               "data": {"mode": "quiet", "owner": "team-web"}}, NAMESPACE)
    client.create(SERVICES, {
        "metadata": {"name": "web", "annotations": tuned_annotations(
            server.url, "web-tuning", **{c.INTERVAL: "2", c.MIN_SECONDS: "6"})},
        "spec": {"ports": [{"port": 80}], "selector": {"app": "web"}}}, NAMESPACE)

    def run() -> None:
        busy = False
        while not stop.wait(20):
            busy = not busy
            server.set_rps(25 if busy else 3)
        server.close()

    threading.Thread(target=run, daemon=True, name="traffic-tuner-demo").start()
