"""A Manager whose informer dies exits non-zero, with the cause logged and /healthz failing."""

from __future__ import annotations

import threading
import time
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


def _kill_the_reflector(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every LIST and WATCH (WatchList included) raises what nothing catches."""
    def dying(self: ListWatch, **kwargs: Any) -> Any:
        raise Fatal("injected reflector bug")

    monkeypatch.setattr(ListWatch, "list", dying)
    monkeypatch.setattr(ListWatch, "watch", dying)


def _run(manager: Manager, stop: threading.Event, codes: list[int]) -> threading.Thread:
    thread = threading.Thread(target=lambda: codes.append(manager.run(stop)), daemon=True,
                              name="pycontroller-test-manager")
    thread.start()
    return thread


def test_a_dying_informer_fails_healthz_and_the_manager_exits_non_zero(
    kube_client: Client, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 8 item 7: the informer used to set the Manager's stop event: a clean exit 0."""
    _kill_the_reflector(monkeypatch)
    manager = Manager(kube_client, registry=CollectorRegistry(), handle_signals=False,
                      metrics_bind_address=None, health_probe_bind_address=None)
    manager.add(Idle(kube_namespace))
    codes: list[int] = []
    stop = threading.Event()
    try:
        with capture_logs() as logs:
            thread = _run(manager, stop, codes)
            thread.join(60)
        assert not thread.is_alive()
        # The caller's event stays theirs: a failure inside the Manager never sets it.
        assert not stop.is_set()
    finally:
        stop.set()
    assert codes == [1]
    healthy, why = manager.healthy()
    assert not healthy and "injected reflector bug" in why and "Fatal" in why
    failed = [e for e in logs if e["event"] == "informer_failed"]
    assert failed and any(e.get("error") == "injected reflector bug" for e in failed)


def test_healthz_answers_503_while_an_informer_is_dead(
    kube_client: Client, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _kill_the_reflector(monkeypatch)
    manager = Manager(kube_client, registry=CollectorRegistry(), handle_signals=False,
                      metrics_bind_address=None, health_probe_bind_address="127.0.0.1:0",
                      grace_period=0.1)
    manager.add(Idle(kube_namespace))
    # Hold the Manager inside its shutdown so the probe server is still up to be asked.
    block = threading.Event()
    real_shutdown = manager.factory.shutdown

    def held_shutdown(timeout: float | None = None) -> None:
        block.wait(30)
        real_shutdown(timeout)

    monkeypatch.setattr(manager.factory, "shutdown", held_shutdown)
    codes: list[int] = []
    stop = threading.Event()
    thread = _run(manager, stop, codes)
    try:
        wait_for(lambda: "health" in manager._servers, timeout=30)
        port = manager.port("health")

        def status() -> int | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    return 200
            except urllib.error.HTTPError as exc:
                return exc.code

        wait_for(lambda: status() == 503, timeout=30)
    finally:
        block.set()
        stop.set()
        thread.join(60)
    assert codes == [1]


def test_factory_wait_for_cache_sync_returns_when_an_informer_died(
    kube_client: Client, kube_namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It used to wait forever (or for its timeout) for a cache that would never fill."""
    from pycontroller.cache._informer_factory import SharedInformerFactory

    _kill_the_reflector(monkeypatch)
    factory = SharedInformerFactory(kube_client, namespace=kube_namespace)
    informer = factory.informer_for(CONFIGMAPS)
    stop = threading.Event()
    factory.start(stop)
    try:
        started = time.monotonic()
        assert factory.wait_for_cache_sync(stop, timeout=60) == {informer.name: False}
        assert time.monotonic() - started < 30, "waited for the timeout"
        assert isinstance(factory.failures()[informer.name], Fatal)
        assert not stop.is_set()
    finally:
        factory.shutdown(10)
        stop.set()
