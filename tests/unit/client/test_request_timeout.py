"""Client.with_request_timeout: a view whose requests give up after its timeout.

The server is a loopback socket that accepts connections and never answers (a stalled
API server or a dead connection, as far as the client can tell).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from kubernetes import client as k8s_client

from pycontroller import CONFIGMAPS, Client
from pycontroller.errors import TransportError


@pytest.fixture
def silent_server() -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # the kernel completes handshakes; nobody ever reads or answers
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_a_view_gives_up_after_its_own_timeout(silent_server: str) -> None:
    cfg = k8s_client.Configuration()
    cfg.host = silent_server
    slow = Client(cfg, request_timeout=60.0)
    try:
        fast = slow.with_request_timeout(0.5)
        started = time.monotonic()
        with pytest.raises(TransportError):
            fast.get(CONFIGMAPS, "x", "default")
        assert time.monotonic() - started < 5.0  # not the parent's 60 s
        fast.close()  # a view does not close the shared pool
        assert slow.with_request_timeout(0.2) is not slow
    finally:
        slow.close()


@pytest.mark.parametrize("seconds", [0.0, -1.0, float("nan"), float("inf")])
def test_the_timeout_must_be_finite_and_positive(silent_server: str, seconds: float) -> None:
    cfg = k8s_client.Configuration()
    cfg.host = silent_server
    client = Client(cfg)
    try:
        with pytest.raises(ValueError, match="request_timeout"):
            client.with_request_timeout(seconds)
    finally:
        client.close()
