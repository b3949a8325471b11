"""The probe/metrics server under slow, idle and rude clients, on loopback (issue 13, item 3)."""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest
from structlog.testing import capture_logs

from pycontroller._util._wait import wait_for
from pycontroller.controller._http import Limits, ProbeServer

ROUTES = {"/healthz": lambda: (200, "text/plain", b"ok\n")}
HALF_REQUEST = b"GET /healthz HTTP/1.1\r\nHost: probe\r\nX-Slow: "


@pytest.fixture
def serve() -> Iterator[list[ProbeServer]]:
    servers: list[ProbeServer] = []
    yield servers
    for server in servers:
        server.stop()


def start(serve: list[ProbeServer], limits: Limits | None = None) -> ProbeServer:
    server = ProbeServer("127.0.0.1:0", dict(ROUTES), *([limits] if limits else []))
    server.start()
    serve.append(server)
    return server


def probe(port: int, timeout: float = 10.0) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def closed_by_server(sock: socket.socket, within: float) -> bool:
    """Whether the server closes ``sock`` (EOF or reset) within ``within`` seconds."""
    sock.settimeout(within)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True


def test_slow_clients_are_bounded_and_probes_keep_answering(serve: list[ProbeServer]) -> None:
    server = start(serve)  # default limits: 32 s to send a request head, 64 connections
    threads_before = threading.active_count()
    slow = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(HALF_REQUEST)
            slow.append(sock)
        wait_for(lambda: server.open_connections() <= server.limits.max_connections,
                 timeout=10, message="connections within the cap")
        started = time.monotonic()
        for _ in range(5):
            assert probe(server.port) == 200
        assert time.monotonic() - started < 10
        # One thread per open connection, and no more connections than the cap.
        wait_for(lambda: threading.active_count() - threads_before
                 <= server.limits.max_connections + 2, timeout=10,
                 message="connection threads within the cap")
        assert server.open_connections() <= server.limits.max_connections
    finally:
        for sock in slow:
            sock.close()


def test_read_header_timeout_cuts_a_peer_that_trickles(serve: list[ProbeServer]) -> None:
    server = start(serve, Limits(read_header_timeout=1.0))
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    started = time.monotonic()
    try:
        sock.sendall(HALF_REQUEST)
        # Keep sending a byte every 0.2 s: a per-read timeout would never fire.
        closed = False
        while time.monotonic() - started < 10:
            try:
                sock.sendall(b"x")
            except OSError:
                closed = True
                break
            if closed_by_server(sock, 0.2):
                closed = True
                break
        assert closed
        assert time.monotonic() - started < 8
        assert probe(server.port) == 200
    finally:
        sock.close()


def test_idle_keep_alive_connection_is_closed(serve: list[ProbeServer]) -> None:
    server = start(serve, Limits(idle_timeout=1.0))
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for _ in range(2):  # keep-alive: two requests on one connection
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b"ok\n"
        assert conn.sock is not None
        assert closed_by_server(conn.sock, 8)
    finally:
        conn.close()


def test_connection_reset_is_logged_as_one_line(serve: list[ProbeServer],
                                                capsys: pytest.CaptureFixture[str]) -> None:
    server = start(serve)
    with capture_logs() as logs:
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(HALF_REQUEST)
        wait_for(lambda: server.open_connections() == 1, timeout=10, message="connected")
        # SO_LINGER 0: close() sends RST, so the server's read fails with a reset.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
        wait_for(lambda: any(e["event"] == "http_client_error" for e in logs), timeout=10,
                 message="http_client_error logged")
    errors = [e for e in logs if e["event"] == "http_client_error"]
    assert len(errors) == 1
    assert errors[0]["error_type"] == "ConnectionResetError"
    assert errors[0]["peer"] == "127.0.0.1"
    assert "Traceback" not in capsys.readouterr().err
    assert probe(server.port) == 200


def test_stop_cuts_slow_connections(serve: list[ProbeServer]) -> None:
    server = start(serve)
    socks = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
             for _ in range(5)]
    try:
        for sock in socks:
            sock.sendall(HALF_REQUEST)
        wait_for(lambda: server.open_connections() == 5, timeout=10, message="connected")
        server.stop()
        serve.clear()
        assert all(closed_by_server(sock, 5) for sock in socks)
    finally:
        for sock in socks:
            sock.close()


def test_limits_are_validated() -> None:
    with pytest.raises(ValueError):
        Limits(read_header_timeout=0)
    with pytest.raises(ValueError):
        Limits(max_connections=0)


def test_a_failing_route_answers_500_without_details(serve: list[ProbeServer]) -> None:
    def broken() -> tuple[int, str, bytes]:
        raise RuntimeError("dsn=postgres://user:hunter2@db")

    server = ProbeServer("127.0.0.1:0", {"/metrics": broken})
    server.start()
    serve.append(server)
    with capture_logs() as logs:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read()
        conn.close()
    assert resp.status == 500 and body == b"internal error\n"
    failed = [e for e in logs if e["event"] == "http_route_failed"]
    assert failed and failed[0]["error_type"] == "RuntimeError"
