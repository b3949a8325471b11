"""The probe and metrics HTTP server: ``/healthz``, ``/readyz``, ``/metrics``.

Any Pod that can reach the ports may connect, so every connection is bounded in time and
number (≙ controller-runtime's servers: 32 s read-header timeout, 90 s idle timeout):

* a peer has ``read_header_timeout`` seconds from connecting (or from the first byte of a
  keep-alive request) to send its whole request head;
* a keep-alive connection may wait ``idle_timeout`` seconds for its next request;
* writing one response may take ``write_timeout`` seconds (a peer that does not read);
* at most ``max_connections`` are open at once. When full, a new connection evicts the one
  that has waited longest on its peer (for a request head or while idle), so probes keep
  answering while slow clients hold connections; if every connection is busy writing a
  response, the new one is closed at once.

One thread serves each open connection, so threads are bounded by ``max_connections``.
Deadlines are enforced by the accept loop, which shuts an expired socket down. A client
error (reset, broken pipe) is logged as one line, ``http_client_error`` at debug level
(peers can cause them at will, so they must not flood the log), never as a traceback.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any, Final, final

import structlog

from pycontroller._util._logging import log_exception

_log = structlog.get_logger(__name__)

# path -> () -> (status, content type, body)
Route = Callable[[], tuple[int, str, bytes]]

READ_HEADER_TIMEOUT: Final = 32.0
IDLE_TIMEOUT: Final = 90.0
WRITE_TIMEOUT: Final = 30.0
MAX_CONNECTIONS: Final = 64
_WAITING = ("head", "idle")  # phases in which the connection waits on its peer


def parse_address(address: str) -> tuple[str, int]:
    """``host:port`` or ``:port`` (all interfaces, as in a Pod) → (host, port).

    Raises:
        ValueError: not of that form.
    """
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"bind address must be host:port or :port, got {address!r}")
    return (host.strip("[]") or "0.0.0.0"), int(port)


@dataclass(frozen=True, slots=True)
class Limits:
    """Timeouts (seconds) and the connection cap of a ``ProbeServer``."""

    read_header_timeout: float = READ_HEADER_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS

    def __post_init__(self) -> None:
        if min(self.read_header_timeout, self.idle_timeout, self.write_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if self.max_connections < 1:
            raise ValueError("max_connections must be at least 1")


class _Conn:
    """One open connection's phase and deadline. Guarded by the server's lock."""

    __slots__ = ("deadline", "expired", "phase", "since", "sock")

    def __init__(self, sock: socket.socket, phase: str, now: float, timeout: float) -> None:
        self.sock = sock
        self.expired = False
        self.phase, self.since, self.deadline = phase, now, now + timeout

    def expire(self) -> None:
        # shutdown() wakes the connection's thread from a blocked recv() or send().
        self.expired = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)


class _Server(HTTPServer):
    """An HTTPServer with one thread per connection, bounded, with deadlines."""

    daemon_threads = True
    request_queue_size = 128  # the listen() backlog; 5 (the default) drops SYNs in bursts

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 limits: Limits) -> None:
        self.limits = limits
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, _Conn] = {}  # guarded by _lock
        self._threads: set[threading.Thread] = set()  # guarded by _lock
        super().__init__(address, handler)

    # -- connection bookkeeping ----------------------------------------------------------
    def enter(self, sock: socket.socket, phase: str) -> bool:
        """Move ``sock`` to ``phase`` with that phase's deadline; False if it has expired."""
        timeout = {"head": self.limits.read_header_timeout, "idle": self.limits.idle_timeout,
                   "write": self.limits.write_timeout}[phase]
        now = time.monotonic()
        with self._lock:
            conn = self._conns.get(sock)
            if conn is None or conn.expired:
                return False
            conn.phase, conn.since, conn.deadline = phase, now, now + timeout
            return True

    def expired(self, sock: socket.socket) -> bool:
        """Whether the server cut this connection off (its errors are not the peer's)."""
        with self._lock:
            conn = self._conns.get(sock)
            return conn is None or conn.expired

    def process_request(self, request: Any, client_address: Any) -> None:
        """Admit the connection (evicting the longest-waiting one when full) and serve it."""
        now = time.monotonic()
        thread: threading.Thread | None = None
        with self._lock:
            live = [c for c in self._conns.values() if not c.expired]
            waiting = [c for c in live if c.phase in _WAITING]
            full = len(live) >= self.limits.max_connections
            if full and waiting:
                min(waiting, key=lambda c: c.since).expire()
            if not full or waiting:
                self._conns[request] = _Conn(request, "head", now,
                                             self.limits.read_header_timeout)
                thread = threading.Thread(
                    target=self._serve, args=(request, client_address), daemon=True,
                    name=f"pycontroller-http-conn-{self.server_address[1]}")
                self._threads.add(thread)
        if thread is None:
            _log.debug("http_connection_refused", reason="every connection is busy")
            super().shutdown_request(request)
            return
        thread.start()

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        """Forget and close the connection."""
        with self._lock:
            self._conns.pop(request, None)
        super().shutdown_request(request)

    def service_actions(self) -> None:
        """Called by ``serve_forever`` on every loop: cut connections past their deadline."""
        now = time.monotonic()
        with self._lock:
            late = [c for c in self._conns.values() if not c.expired and c.deadline <= now]
            for conn in late:
                conn.expire()
        for conn in late:
            _log.debug("http_connection_timed_out", phase=conn.phase)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Log a client error as one line (the default prints a traceback to stderr)."""
        exc = sys.exc_info()[1]
        if self.expired(request):
            return
        peer = client_address[0] if isinstance(client_address, tuple) else str(client_address)
        _log.debug("http_client_error", peer=peer, error_type=type(exc).__name__,
                  error=str(exc))

    def close_all(self, timeout: float) -> None:
        """Cut every connection and wait up to ``timeout`` for their threads."""
        with self._lock:
            for conn in self._conns.values():
                conn.expire()
            threads = list(self._threads)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def open_connections(self) -> int:
        """How many connections are open and not cut off."""
        with self._lock:
            return sum(not c.expired for c in self._conns.values())


@final
class ProbeServer:
    """Serves fixed routes on one address from a daemon thread, within ``limits``.

    Raises (on construction):
        ValueError: ``address`` is not ``host:port``.
        OSError: it cannot listen there; the message names the address.

    Thread-safety: thread-safe; routes are called from connection threads concurrently.
    """

    def __init__(self, address: str, routes: dict[str, Route],
                 limits: Limits | None = None) -> None:
        host, port = parse_address(address)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, bounded by the idle timeout
            server: _Server
            _served = False

            def handle_one_request(self) -> None:
                # After the first request, wait (idle) for the next one to begin.
                if self._served:
                    if not self.server.enter(self.connection, "idle"):
                        self.close_connection = True
                        return
                    if not self.rfile.peek(1):  # type: ignore[attr-defined]
                        self.close_connection = True  # peer closed, or we cut it off
                        return
                    if not self.server.enter(self.connection, "head"):
                        self.close_connection = True
                        return
                self._served = True
                super().handle_one_request()

            def do_GET(self) -> None:
                if not self.server.enter(self.connection, "write"):
                    self.close_connection = True  # cut off while its head arrived
                    return
                route = routes.get(self.path.split("?", 1)[0])
                if route is None:
                    status, ctype, body = 404, "text/plain", b"not found\n"
                else:
                    try:
                        status, ctype, body = route()
                    except Exception:  # a probe must answer, not hang; details go to the log
                        log_exception(_log, "http_route_failed", path=self.path[:200])
                        status, ctype, body = 500, "text/plain", b"internal error\n"
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return  # probes every few seconds would flood the log

            def log_error(self, format: str, *args: object) -> None:
                _log.debug("http_bad_request", peer=self.client_address[0],
                           error=format % args)

        try:
            self._server = _Server((host, port), Handler, limits or Limits())
        except OSError as exc:  # in use, no permission, a host that does not resolve
            raise OSError(exc.errno, f"cannot listen on {address}: "
                                     f"{exc.strerror or exc}") from exc
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.2,),
                                        daemon=True, name=f"pycontroller-http-{port}")

    @property
    def port(self) -> int:
        """The bound port (useful with port 0)."""
        return int(self._server.server_address[1])

    @property
    def limits(self) -> Limits:
        """The timeouts and connection cap in force."""
        return self._server.limits

    def open_connections(self) -> int:
        """How many client connections are open now (at most ``limits.max_connections``)."""
        return self._server.open_connections()

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving, cut open connections and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.close_all(5)
        self._server.server_close()
        self._thread.join(5)
