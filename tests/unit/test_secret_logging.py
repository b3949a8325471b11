"""Secrets stay out of logged tracebacks under every common structlog setup (issue 13, item 2)."""

from __future__ import annotations

import ast
import secrets
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import structlog
from kubernetes.client import Configuration
from secret_logging import CONFIGS, captured

from pycontroller import SECRETS, Client
from pycontroller._util._wait import wait_for
from pycontroller.cache._shared_informer import SharedIndexInformer
from pycontroller.errors import ConfigError, TransportError
from pycontroller.testing._fake_lister_watcher import FakeListerWatcher

PKG = Path(__file__).resolve().parents[2] / "pycontroller"


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_failed_handler_logs_no_frame_locals(config: str, stop: threading.Event) -> None:
    password = secrets.token_hex(24)
    lw = FakeListerWatcher(kind="Secret")
    lw.upsert({"metadata": {"name": "db", "namespace": "ns"}, "data": {"password": password}})

    def on_add(obj: Mapping[str, Any], initial: bool) -> None:
        data = dict(obj["data"])  # the Secret, held in a local of the failing frame
        raise RuntimeError(f"cannot reconcile {len(data)} keys")

    with captured(config) as out:
        informer = SharedIndexInformer(lw, expected_kind="Secret", use_watch_list=False)
        informer.add_event_handler(on_add=on_add)
        informer.start(stop)
        wait_for(lambda: "handler_failed" in out.getvalue(), timeout=20,
                 message="handler_failed logged")
        stop.set()
        informer.join(10)
        text = out.getvalue()
    assert "RuntimeError" in text and "cannot reconcile 1 keys" in text  # still useful
    assert "on_add" in text  # the traceback is there, as text
    assert password not in text and password[:16] not in text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Hidden:
    """Holds the test's token without showing it in this test's own frame locals."""

    def __init__(self, value: str) -> None:
        self.value = value


def _client_with_token(token: _Hidden) -> Client:
    cfg = Configuration(host=f"http://127.0.0.1:{_closed_port()}",
                        api_key={"authorization": f"Bearer {token.value}"})
    return Client(cfg, request_timeout=2)



def logged_failure(config: str, call: Callable[[], object], expected: type[Exception],
                   missing: str) -> tuple[str, Exception]:
    """Run ``call`` under logging setup ``config``. It must raise ``expected``, which an
    application then logs with ``log.exception``. Returns the output and the error."""
    with captured(config) as out:
        try:
            call()
        except Exception as exc:
            assert isinstance(exc, expected), type(exc)
            structlog.get_logger("app").exception("request_failed")
            error = exc
        else:
            pytest.fail(missing)
        return out.getvalue(), error

@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_transport_error_carries_no_token_in_its_frames(config: str) -> None:
    """An application that logs our error with ``log.exception`` must not print the token."""
    token = _Hidden("tok" + secrets.token_hex(60))  # longer than renderers' 80-char cut
    client = _client_with_token(token)
    text, _ = logged_failure(config, lambda: client.create(SECRETS, {"metadata": {"name": "db"}},
                                                           "ns"),
                             TransportError, "a closed port answered")
    client.close()
    assert "request_failed" in text and "TransportError" in text
    value = token.value
    for piece in (value, value[:20], value[30:50], value[-20:]):
        assert piece not in text


def test_library_never_hands_exc_info_to_structlog() -> None:
    """Every exception is logged through ``log_exception`` (text, no frames)."""
    bad = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                if node.func.attr == "exception" and not (
                        isinstance(node.func.value, ast.Name) and node.func.value.id == "pytest"):
                    bad.append(f"{path.relative_to(PKG)}:{node.lineno} .exception()")
                bad += [f"{path.relative_to(PKG)}:{node.lineno} exc_info="
                        for kw in node.keywords if kw.arg in ("exc_info", "stack_info")]
    assert bad == []


@pytest.mark.parametrize("config", ["default-console-rich", "json-dict-tracebacks"])
def test_failed_credential_refresh_is_a_config_error_without_frames(config: str) -> None:
    token = _Hidden("tok" + secrets.token_hex(30))

    def refresh(cfg: Any) -> None:
        previous = f"Bearer {token.value}"  # what a plugin holds when it fails
        raise RuntimeError(f"exec plugin exited with 1 ({len(previous)})")

    cfg = Configuration(host=f"http://127.0.0.1:{_closed_port()}")
    cfg.refresh_api_key_hook = refresh  # type: ignore[assignment, unused-ignore]
    client = Client(cfg, request_timeout=2)
    text, error = logged_failure(config, lambda: client.get(SECRETS, "db", "ns"), ConfigError,
                                 "the refresh failure was not raised as ConfigError")
    assert error.__cause__ is not None and error.__cause__.__traceback__ is None
    client.close()
    assert "exec plugin exited" in text
    assert token.value not in text and token.value[:20] not in text


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_token_with_a_line_break_is_refused_without_showing_it(config: str) -> None:
    """http.client refuses such a header with the whole value in its ValueError message;
    the client refuses it first, with a ConfigError that does not name the value."""
    token = _Hidden("tok" + secrets.token_hex(30) + "\nX-Injected: 1")
    client = _client_with_token(token)
    text, _ = logged_failure(config, lambda: client.get(SECRETS, "db", "ns"), ConfigError,
                             "a token with a line break was sent")
    client.close()
    assert "line break" in text
    assert token.value[:20] not in text and token.value[3:40] not in text
