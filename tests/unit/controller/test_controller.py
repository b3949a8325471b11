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
            if isinstance(step, BaseException):
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


@pytest.mark.parametrize("odd", [True, Requeue, 5, "later"],
                         ids=["bool", "class", "int", "str"])
def test_a_result_that_is_not_requeue_is_a_failure_not_a_dead_worker(
        ctrl: Scripted, registry: CollectorRegistry, odd: object) -> None:
    from structlog.testing import capture_logs

    ctrl.workers = 1  # documentation only: the fixture started 4; a dead one is not replaced
    ctrl.script["ns/a"] = [odd, odd, odd, odd, None]
    with capture_logs() as logs:
        ctrl.queue.add("ns/a")
        wait_for(lambda: count(registry, "success") == 1, timeout=5)
    assert ctrl.calls == ["ns/a"] * 5  # retried with backoff, like an exception
    assert count(registry, "error") == 4
    assert ctrl.healthy() == (True, "ok")
    failed = [e for e in logs if e["event"] == "reconcile_failed"]
    assert len(failed) == 4 and "must return None or Requeue" in failed[0]["error"]


def test_a_base_exception_from_reconcile_is_a_failure_not_a_dead_worker(
        ctrl: Scripted, registry: CollectorRegistry) -> None:
    import asyncio

    # asyncio.CancelledError and GeneratorExit are BaseExceptions, not Exceptions.
    ctrl.script["ns/a"] = [asyncio.CancelledError(), GeneratorExit(), asyncio.CancelledError(),
                           asyncio.CancelledError(), asyncio.CancelledError(), None]
    ctrl.queue.add("ns/a")
    wait_for(lambda: count(registry, "success") == 1, timeout=5)
    assert count(registry, "error") == 5
    assert sample(registry, "controller_runtime_reconcile_panics_total") == 5
    assert ctrl.healthy() == (True, "ok")


@pytest.mark.parametrize("after", [float("nan"), "5", -1.0, float("inf")])
def test_requeue_after_must_be_a_number(after: object) -> None:
    if after == -1.0 or after == float("inf"):
        assert Requeue(after=after).after == after  # as client-go
        return
    with pytest.raises((TypeError, ValueError), match="after"):
        Requeue(after=after)  # type: ignore[arg-type]


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


def sample(registry: CollectorRegistry, name: str) -> float:
    return registry.get_sample_value(name, {"controller": "scripted"}) or 0.0


def test_terminal_error_is_counted_and_not_retried(ctrl: Scripted,
                                                   registry: CollectorRegistry) -> None:
    from structlog.testing import capture_logs

    from pycontroller.errors import TerminalError

    ctrl.script["ns/a"] = [TerminalError("bad spec")]
    with capture_logs() as logs:
        ctrl.queue.add("ns/a")
        wait_for(lambda: sample(registry, "controller_runtime_terminal_reconcile_errors_total")
                 == 1, timeout=5)
        ctrl.queue.add("ns/b")  # the queue moves on; ns/a is not requeued
        wait_for(lambda: "ns/b" in ctrl.calls, timeout=5)
    assert ctrl.calls.count("ns/a") == 1 and ctrl.queue.num_requeues("ns/a") == 0
    assert [e["key"] for e in logs if e["event"] == "reconcile_terminal_error"] == ["ns/a"]
    assert count(registry, "error") == 1
    assert sample(registry, "controller_runtime_reconcile_panics_total") == 0


def test_an_error_raised_from_a_terminal_error_is_terminal(
        ctrl: Scripted, registry: CollectorRegistry) -> None:
    """``raise X from TerminalError(...)`` is Python's wrapping (Go's ``%w``):
    controller-runtime honours a wrapped TerminalError (errors.As); so do we. An error
    merely raised *while handling* one (``__context__``) is not terminal."""
    from pycontroller.errors import TerminalError

    def wrapped() -> Exception:
        try:
            raise TerminalError("bad spec")
        except TerminalError as exc:
            try:
                raise RuntimeError("step 2 failed") from exc
            except RuntimeError as outer:
                return outer

    def during() -> Exception:
        try:
            raise TerminalError("bad spec")
        except TerminalError:
            try:
                raise KeyError("bug in the handler")
            except KeyError as inner:
                return inner

    ctrl.script["ns/a"] = [wrapped()]
    ctrl.script["ns/b"] = [during(), None]
    ctrl.queue.add("ns/a")
    ctrl.queue.add("ns/b")
    wait_for(lambda: count(registry, "success") == 1, timeout=5)
    wait_for(lambda: sample(registry, "controller_runtime_terminal_reconcile_errors_total")
             == 1, timeout=5)
    assert ctrl.calls.count("ns/a") == 1 and ctrl.calls.count("ns/b") == 2


def test_unexpected_exceptions_count_as_panics(ctrl: Scripted,
                                               registry: CollectorRegistry) -> None:
    from pycontroller.errors import ConflictError

    ctrl.script["ns/a"] = [KeyError("spec"), ConflictError(409), None]
    ctrl.queue.add("ns/a")
    wait_for(lambda: count(registry, "success") == 1, timeout=5)
    assert sample(registry, "controller_runtime_reconcile_panics_total") == 1
    assert sample(registry, "controller_runtime_max_concurrent_reconciles") == 4
    assert sample(registry, "controller_runtime_active_workers") == 0


def test_log_is_bound_to_the_key_inside_reconcile() -> None:
    from structlog.testing import capture_logs

    class Logging(Controller):
        resource = PODS

        def reconcile(self, key: str) -> Requeue | None:
            self.log.info("working")
            return None

    controller = Logging()
    controller.bind(client=cast("Client", None), listers={PODS: Lister(ThreadSafeStore())})
    with capture_logs() as logs:
        controller.log.info("outside")
        controller.process("ns/a")
        controller.process("ns/b")
    assert [(e["event"], e.get("key")) for e in logs] == [
        ("outside", None), ("working", "ns/a"), ("working", "ns/b")]
    assert all(e["controller"] == "logging" for e in logs)


class Clocked(Controller):
    """A controller on a fake clock whose reconcile follows a script."""

    resource = PODS

    def __init__(self, clock: Any, registry: CollectorRegistry) -> None:
        super().__init__(name="scripted")
        self.script: list[Any] = []
        self.calls = 0
        self.gate = threading.Event()
        self.gate.set()
        provider = PrometheusMetricsProvider(registry=registry)
        queue: RateLimitingQueue[str] = RateLimitingQueue(
            name="clocked", clock=clock,
            rate_limiter=ItemExponentialFailureRateLimiter(base_delay=0.001, max_delay=0.01,
                                                           clock=clock))
        self.bind(client=cast("Client", None), listers={PODS: Lister(ThreadSafeStore())},
                  queue=queue, metrics=ControllerMetrics(provider, "scripted"), clock=clock)

    def reconcile(self, key: str) -> Requeue | None:
        self.calls += 1
        self.gate.wait(10)
        step = self.script.pop(0) if self.script else None
        if isinstance(step, Exception):
            raise step
        return cast("Requeue | None", step)


def test_429_is_retried_no_sooner_than_retry_after(registry: CollectorRegistry) -> None:
    from pycontroller.errors import TooManyRequestsError
    from pycontroller.testing import FakeClock

    clock = FakeClock()
    throttled = TooManyRequestsError(429, "TooManyRequests")
    throttled.retry_after = 3.0
    controller = Clocked(clock, registry)
    try:
        controller.script = [throttled]
        stop = threading.Event()
        controller.start(stop)
        controller.queue.add("ns/a")
        wait_for(lambda: controller.calls == 1 and len(controller.queue) == 0
                 and controller.queue.num_requeues("ns/a") == 1, timeout=5)
        clock.step(2.9)
        assert clock.wait_for_waiters(after_step=True)
        assert controller.calls == 1 and len(controller.queue) == 0
        clock.step(0.2)
        wait_for(lambda: controller.calls == 2, timeout=5)
    finally:
        assert controller.stop(5.0)


def test_reconcile_past_its_timeout_is_logged_and_counted(registry: CollectorRegistry) -> None:
    from structlog.testing import capture_logs

    from pycontroller.testing import FakeClock

    clock = FakeClock()
    controller = Clocked(clock, registry)
    controller.reconcile_timeout = 10.0
    controller.stuck_after = 30.0
    controller.gate.clear()
    try:
        with capture_logs() as logs:
            controller.start(threading.Event())
            controller.queue.add("ns/slow")
            wait_for(lambda: controller.calls == 1, timeout=5)
            clock.step(11.0)
            wait_for(lambda: sample(registry, "controller_runtime_reconcile_timeouts_total")
                     == 1, timeout=5)
            assert controller.healthy() == (True, "ok")  # slow, not stuck
            clock.step(20.0)
            assert not controller.healthy()[0]  # past stuck_after: /healthz fails
            controller.gate.set()
            wait_for(lambda: controller.healthy()[0], timeout=5)
        timeouts = [e for e in logs if e["event"] == "reconcile_timeout"]
        assert len(timeouts) == 1 and timeouts[0]["key"] == "ns/slow"  # reported once
    finally:
        controller.gate.set()
        assert controller.stop(5.0)


def test_a_finalizer_without_domain_is_refused_at_bind() -> None:
    class Bad(Controller):
        resource = PODS
        finalizer = "cleanup"

    with pytest.raises(ValueError, match="domain prefix"):
        Bad().bind(client=cast("Client", None), listers={PODS: Lister(ThreadSafeStore())})


def test_workers_honour_the_stop_event_they_are_given(registry: CollectorRegistry) -> None:
    controller = Scripted()
    controller.workers = 1
    provider = PrometheusMetricsProvider(registry=registry)
    queue: RateLimitingQueue[str] = RateLimitingQueue(name="scripted", metrics=provider)
    controller.bind(client=cast("Client", None), listers={PODS: Lister(ThreadSafeStore())},
                    queue=queue, metrics=ControllerMetrics(provider, "scripted"))
    controller.gate = threading.Event()
    stop = threading.Event()
    controller.start(stop)
    try:
        queue.add("ns/running")
        wait_for(lambda: "ns/running" in controller.active, timeout=5)
        queue.add("ns/queued")  # waits behind the running reconcile
        stop.set()  # only the event: controller.stop() is not called
        controller.gate.set()
        # The running reconcile finishes; no further key is handed out; the workers end.
        wait_for(lambda: not any(t.is_alive() for t in controller._threads), timeout=5,
                 message="workers ended after the stop event")
        assert controller.calls == ["ns/running"]
        assert controller.healthy() == (True, "ok")  # an intended stop, not dead workers
    finally:
        controller.gate.set()
        assert controller.stop(5.0)


def test_the_scope_check_of_written_objects() -> None:
    from pycontroller import CONFIGMAPS, NAMESPACES
    from pycontroller.controller._controller import _scope_check

    def obj(name: str = "a", namespace: str = "ns", **labels: str) -> dict[str, Any]:
        return {"metadata": {"name": name, "namespace": namespace, "labels": labels}}

    check = _scope_check(CONFIGMAPS, "ns", "app=web,!old", r"metadata.name!=skip\,me")
    assert check(obj(app="web"))
    assert not check(obj(namespace="other", app="web"))
    assert not check(obj(app="db")) and not check(obj(app="web", old="1"))
    assert not check(obj(name="skip,me", app="web"))
    assert check({"kind": "Status"}) and check(None)  # unsure: counts as in scope
    unknown_field = _scope_check(CONFIGMAPS, None, None, "status.phase=Running")
    assert unknown_field(obj(namespace="anywhere"))  # only the server can judge it
    cluster = _scope_check(NAMESPACES, "ns", None, "metadata.name=a")
    assert cluster({"metadata": {"name": "a"}}) and not cluster({"metadata": {"name": "b"}})
