"""The probe and metrics HTTP server: ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import final

import structlog

_log = structlog.get_logger(__name__)

# path -> () -> (status, content type, body)
Route = Callable[[], tuple[int, str, bytes]]


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``:port`` (all interfaces, as in a Pod) → (host, port).

    Raises:
        ValueError: not of that form.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bind address must be host:port or :port, got {address!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


@final
class ProbeServer:
    """Serves fixed routes on one address from a daemon thread. Thread-safe.

    Raises (on construction):
        ValueError: ``address`` is not ``host:port``.
        OSError: it cannot listen there; the message names the address.
    """

    def __init__(self, address: str, routes: dict[str, Route]) -> None:
        host, port = parse_address(address)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    try:
                        status, ctype, body = route()
                    except Exception as exc:  # a probe must answer, not hang
                        status, ctype, body = 500, "text/plain", f"{exc}\n".encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would flood the log

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as exc:  # in use, no permission, a host that does not resolve
            raise OSError(exc.errno, f"cannot listen on {address}: "
                                     f"{exc.strerror or exc}") from exc
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name=f"pycontroller-http-{port}")

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
