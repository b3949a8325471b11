"""A Manager whose informer dies exits non-zero, with the cause logged and /healthz failing."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from structlog.testing import capture_logs

from pycontroller import CONFIGMAPS, Client, Controller, Manager, Requeue
from pycontroller._util._wait import wait_for
from pycontroller.client import ListWatch

pytestmark = pytest.mark.integration


class Fatal(BaseException):
    """Nothing in the reflector catches this: the informer dies of it."""


class Idle(Controller):
    resource = CONFIGMAPS

    def __init__(self, namespace: str) -> None:
        super().__init__(name="idle")
        self.namespace = namespace

    def reconcile(self, key: str) -> Requeue | None:
        return None


def test_a_dying_informer_fails_healthz_and_the_manager_exits_non_zero(
    kube_client: Client, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 8 item 7: the informer used to set the Manager's stop event: a clean exit 0."""
    gate = threading.Event()
    real_list = ListWatch.list

    def dying_list(self: ListWatch, **kwargs: Any) -> Any:
        if gate.is_set():
            raise Fatal("injected reflector bug")
        return real_list(self, **kwargs)

    monkeypatch.setattr(ListWatch, "list", dying_list)
    manager = Manager(kube_client, registry=CollectorRegistry(), handle_signals=False,
                      metrics_bind_address=None, health_probe_bind_address="127.0.0.1:0")
    manager.add(Idle(kube_namespace))
    gate.set()
    codes: list[int] = []
    with capture_logs() as logs:
        thread = threading.Thread(target=lambda: codes.append(manager.run()),
                                  name="pycontroller-test-manager")
        thread.start()
        thread.join(60)
    assert not thread.is_alive()
    assert codes == [1]
    healthy, why = manager.healthy()
    assert not healthy and "injected reflector bug" in why and "Fatal" in why
    failed = [e for e in logs if e["event"] == "informer_failed"]
    assert failed and any(e.get("error") == "injected reflector bug" for e in failed)


def test_healthz_answers_503_while_an_informer_is_dead(
    kube_client: Client, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    block = threading.Event()

    def dying_list(self: ListWatch, **kwargs: Any) -> Any:
        raise Fatal("injected reflector bug")

    monkeypatch.setattr(ListWatch, "list", dying_list)
    manager = Manager(kube_client, registry=CollectorRegistry(), handle_signals=False,
                      metrics_bind_address=None, health_probe_bind_address="127.0.0.1:0",
                      grace_period=0.1)
    manager.add(Idle(kube_namespace))
    # Hold the Manager inside its shutdown so the probe server is still up to be asked.
    real_shutdown = manager.factory.shutdown

    def held_shutdown(timeout: float | None = None) -> None:
        block.wait(30)
        real_shutdown(timeout)

    monkeypatch.setattr(manager.factory, "shutdown", held_shutdown)
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(manager.run()),
                              name="pycontroller-test-manager")
    thread.start()
    try:
        wait_for(lambda: "health" in manager._servers, timeout=30)
        port = manager.port("health")

        def status() -> int | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    return 200
            except urllib.error.HTTPError as exc:
                return exc.code

        assert wait_for(lambda: status() == 503, timeout=30)
    finally:
        block.set()
        thread.join(60)
    assert codes == [1]
