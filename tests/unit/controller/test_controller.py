"""The worker loop of Controller, with a real queue and store and no API server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from pycontroller import PODS, Controller, Requeue
from pycontroller._util._wait import wait_for
from pycontroller.cache import DeletedFinalStateUnknown, Lister, ObjectKey, ThreadSafeStore
from pycontroller.client import Client
from pycontroller.controller._metrics import ControllerMetrics
from pycontroller.metrics import PrometheusMetricsProvider
from pycontroller.workqueue import ItemExponentialFailureRateLimiter, RateLimitingQueue


class Scripted(Controller):
    """reconcile() follows a per-key script of results; records concurrency."""

    resource = PODS
    workers = 4

    def __init__(self) -> None:
        super().__init__(name="scripted")
        self.script: dict[str, list[Any]] = {}
        self.calls: list[str] = []
        self.lock = threading.Lock()
        self.active: set[str] = set()
        self.overlaps: list[str] = []
        self.gate: threading.Event | None = None

    def reconcile(self, key: str) -> Requeue | None:
        with self.lock:
            if key in self.active:
                self.overlaps.append(key)
            self.active.add(key)
            self.calls.append(key)
            step = self.script.get(key, [None]).pop(0) if self.script.get(key) else None
        try:
            if self.gate is not None:
                self.gate.wait(5)
            if isinstance(step, Exception):
                raise step
            return cast("Requeue | None", step)
        finally:
            with self.lock:
                self.active.discard(key)


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def ctrl(registry: CollectorRegistry) -> Iterator[Scripted]:
    controller = Scripted()
    provider = PrometheusMetricsProvider(registry=registry)
    queue: RateLimitingQueue[str] = RateLimitingQueue(
        name="scripted", metrics=provider,
        rate_limiter=ItemExponentialFailureRateLimiter(base_delay=0.001, max_delay=0.01))
    controller.bind(client=cast("Client", None), listers={PODS: Lister(ThreadSafeStore())},
                    queue=queue, metrics=ControllerMetrics(provider, "scripted"))
    stop = threading.Event()
    controller.start(stop)
    yield controller
    stop.set()
    assert controller.stop(5.0)


def count(registry: CollectorRegistry, result: str) -> float:
    value = registry.get_sample_value("controller_runtime_reconcile_total",
                                      {"controller": "scripted", "result": result})
    return value or 0.0


def test_success_forgets(ctrl: Scripted, registry: CollectorRegistry) -> None:
    ctrl.queue.add("ns/a")
    wait_for(lambda: count(registry, "success") == 1, timeout=5)
    assert ctrl.queue.num_requeues("ns/a") == 0


def test_exception_is_logged_and_retried_with_backoff(ctrl: Scripted,
                                                      registry: CollectorRegistry) -> None:
    from structlog.testing import capture_logs

    ctrl.script["ns/a"] = [RuntimeError("boom"), RuntimeError("boom"), None]
    with capture_logs() as logs:
        ctrl.queue.add("ns/a")
        wait_for(lambda: count(registry, "success") == 1, timeout=5)
    failed = [e for e in logs if e["event"] == "reconcile_failed"]
    assert len(failed) == 2 and failed[0]["key"] == "ns/a"
    assert "RuntimeError: boom" in failed[0]["traceback"]
    assert count(registry, "error") == 2
    assert registry.get_sample_value("controller_runtime_reconcile_errors_total",
                                     {"controller": "scripted"}) == 2
    assert ctrl.queue.num_requeues("ns/a") == 0  # forgotten after the success


def test_requeue_results(ctrl: Scripted, registry: CollectorRegistry) -> None:
    ctrl.script["ns/a"] = [Requeue(), Requeue(after=0.01), None]
    ctrl.queue.add("ns/a")
    wait_for(lambda: count(registry, "success") == 1, timeout=5)
    assert ctrl.calls == ["ns/a"] * 3
    assert count(registry, "requeue") == 1 and count(registry, "requeue_after") == 1


def test_one_key_is_never_reconciled_concurrently(ctrl: Scripted) -> None:
    for _ in range(200):
        for key in ("ns/a", "ns/b", "ns/c"):
            ctrl.queue.add(key)
    wait_for(lambda: len(ctrl.queue) == 0, timeout=5)
    wait_for(lambda: not ctrl.active, timeout=5)
    assert ctrl.overlaps == []
    assert set(ctrl.calls) == {"ns/a", "ns/b", "ns/c"}


def test_key_added_during_reconcile_runs_again_after(ctrl: Scripted) -> None:
    ctrl.gate = threading.Event()
    ctrl.queue.add("ns/a")
    wait_for(lambda: "ns/a" in ctrl.active, timeout=5)
    ctrl.queue.add("ns/a")  # while it is being reconciled
    ctrl.gate.set()
    wait_for(lambda: ctrl.calls.count("ns/a") == 2, timeout=5)
    assert ctrl.overlaps == []


def test_default_hooks_enqueue_keys_including_tombstones(ctrl: Scripted) -> None:
    ctrl.gate = threading.Event()  # hold the workers so the queue can be inspected
    ctrl.on_add({"metadata": {"name": "p", "namespace": "ns"}}, False)
    ctrl.on_delete(DeletedFinalStateUnknown(ObjectKey("ns/gone"), None))
    wait_for(lambda: len(ctrl.calls) >= 1, timeout=5)
    ctrl.gate.set()
    wait_for(lambda: {"ns/p", "ns/gone"} <= set(ctrl.calls), timeout=5)


def test_stuck_worker_fails_health(ctrl: Scripted) -> None:
    ctrl.stuck_after = 0.05
    ctrl.gate = threading.Event()
    ctrl.queue.add("ns/slow")
    wait_for(lambda: not ctrl.healthy()[0], timeout=5)
    assert "reconcile running" in ctrl.healthy()[1]
    ctrl.gate.set()
    wait_for(lambda: ctrl.healthy()[0], timeout=5)


def test_controller_without_resource_is_rejected() -> None:
    class Broken(Controller):
        pass

    with pytest.raises(TypeError, match="resource"):
        Broken()
