"""Reconcile lifecycle against the real apiserver: the declared finalizer, read your own
writes, TerminalError, and a 429's Retry-After from a real HTTP answer."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from helpers import running
from kubernetes import client as k8s_client
from prometheus_client import CollectorRegistry

from pycontroller import (
    CONFIGMAPS,
    SECRETS,
    Client,
    Controller,
    Lister,
    Predicate,
    Requeue,
    Watch,
    connect,
    set_controller_reference,
)
from pycontroller._util._wait import wait_for
from pycontroller.cache import ThreadSafeStore
from pycontroller.errors import ConflictError, NotFoundError, TerminalError
from pycontroller.workqueue import (
    ItemExponentialFailureRateLimiter,
    RateLimitingQueue,
    parallelize,
)

pytestmark = pytest.mark.integration
FINALIZER = "example.com/cleanup"


class Finalizing(Controller):
    resource = CONFIGMAPS
    finalizer = FINALIZER

    def __init__(self, failures: int = 0) -> None:
        super().__init__()
        self.failures = failures
        self.cleanups: list[str] = []
        self.reconciled: list[str] = []

    def rate_limiter(self) -> Any:
        return ItemExponentialFailureRateLimiter(base_delay=0.2, max_delay=1.0)

    def reconcile(self, key: str) -> Requeue | None:
        self.reconciled.append(key)
        return None

    def cleanup(self, obj: Any) -> None:
        self.cleanups.append(obj["metadata"]["name"])
        if len(self.cleanups) <= self.failures:
            raise RuntimeError("cleanup failed")


def finalizers(client: Client, ns: str, name: str) -> list[str] | None:
    try:
        obj = client.get(CONFIGMAPS, name, ns)
    except NotFoundError:
        return None
    return list(obj["metadata"].get("finalizers") or [])


def test_finalizer_added_cleanup_runs_then_object_goes(
        kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    controller = Finalizing()
    with running(kube_client, ns, controller):
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "a",
                                                     "finalizers": ["other/keep"]}}, ns)
        wait_for(lambda: finalizers(kube_client, ns, "a") == ["other/keep", FINALIZER],
                 timeout=30)
        wait_for(lambda: f"{ns}/a" in controller.reconciled, timeout=30)
        kube_client.delete(CONFIGMAPS, "a", ns)
        wait_for(lambda: finalizers(kube_client, ns, "a") == ["other/keep"], timeout=30,
                 message="our finalizer removed, the other kept")
        assert controller.cleanups == ["a"]
        kube_client.patch(CONFIGMAPS, "a", {"metadata": {"finalizers": None}}, ns)
        wait_for(lambda: finalizers(kube_client, ns, "a") is None, timeout=30)


def test_failing_cleanup_keeps_the_object_and_is_retried(
        kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    controller = Finalizing(failures=2)
    with running(kube_client, ns, controller):
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "b"}}, ns)
        wait_for(lambda: finalizers(kube_client, ns, "b") == [FINALIZER], timeout=30)
        kube_client.delete(CONFIGMAPS, "b", ns)
        wait_for(lambda: len(controller.cleanups) >= 1, timeout=30)
        assert finalizers(kube_client, ns, "b") == [FINALIZER]  # failed: still there
        wait_for(lambda: finalizers(kube_client, ns, "b") is None, timeout=30,
                 message="object gone after cleanup succeeded")
        assert controller.cleanups == ["b", "b", "b"]


class DelayedWatch:
    """Wraps a client: every ConfigMap watch event arrives ``delay`` seconds late."""

    def __init__(self, client: Client, delay: float) -> None:
        original = client.watch

        def watch(resource: Any, *args: Any, **kwargs: Any) -> Any:
            stream = original(resource, *args, **kwargs)
            return _Delayed(stream, delay) if resource == CONFIGMAPS else stream
        client.watch = watch  # type: ignore[method-assign]


class _Delayed:
    def __init__(self, stream: Any, delay: float) -> None:
        self._stream, self._delay = stream, delay

    def __iter__(self) -> Iterator[Any]:
        for event in self._stream:
            time.sleep(self._delay)
            yield event

    def close(self) -> None:
        self._stream.close()


class Incrementing(Controller):
    """Each reconcile PUTs ``count + 1`` from the cached object (optimistic concurrency)."""

    resource = CONFIGMAPS
    # Only the test triggers reconciles: its own writes do not.
    predicates = (Predicate(update=lambda old, new: False),)

    def __init__(self, read_your_writes: bool) -> None:
        super().__init__()
        self.read_your_writes = read_your_writes
        self.reconciles = 0
        self.conflicts = 0
        self.written = 0

    def reconcile(self, key: str) -> Requeue | None:
        obj = self.lister.get_by_key(key)
        if obj is not None:
            meta = obj["metadata"]
            count = int((meta.get("annotations") or {}).get("count", "0"))
            new = {**obj, "metadata": {**meta, "annotations": {"count": str(count + 1)}}}
            try:
                self.client.replace(CONFIGMAPS, new)
                self.written += 1
            except ConflictError:
                self.conflicts += 1  # the cache was older than our own last write
        self.reconciles += 1
        return None


def increments(kube_control_plane: Any, kube_client: Client, ns: str,
               read_your_writes: bool, rounds: int = 12) -> tuple[Incrementing, int, Any]:
    own = connect(kube_control_plane.kubeconfig)
    DelayedWatch(own, delay=0.3)
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "counter"}}, ns)
    controller = Incrementing(read_your_writes)
    registry = CollectorRegistry()
    try:
        with running(own, ns, controller, registry=registry):
            wait_for(lambda: controller.reconciles == 1, timeout=30)
            for i in range(rounds):  # each trigger right after the previous reconcile
                controller.queue.add(f"{ns}/counter")
                want = i + 2
                wait_for(lambda: controller.reconciles == want, timeout=30)  # noqa: B023
    finally:
        own.close()
    final = kube_client.get(CONFIGMAPS, "counter", ns)["metadata"]["annotations"]["count"]
    return controller, int(final), registry


def test_read_your_own_writes_prevents_stale_reads(
        kube_control_plane: Any, kube_client: Client, kube_namespace: str) -> None:
    controller, final, registry = increments(kube_control_plane, kube_client,
                                             kube_namespace, read_your_writes=True)
    assert controller.conflicts == 0
    assert final == controller.reconciles == 13  # no lost increment
    waits = registry.get_sample_value("pycontroller_read_your_writes_waits_total",
                                      {"controller": "incrementing"})
    assert waits is not None and waits >= 10
    assert registry.get_sample_value("pycontroller_read_your_writes_timeouts_total",
                                     {"controller": "incrementing"}) == 0


def test_without_read_your_own_writes_reconciles_see_stale_state(
        kube_control_plane: Any, kube_client: Client, kube_namespace: str) -> None:
    controller, final, _ = increments(kube_control_plane, kube_client, kube_namespace,
                                      read_your_writes=False)
    assert controller.conflicts > 0
    assert final < controller.reconciles  # increments were lost


class Terminal(Controller):
    resource = CONFIGMAPS

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def rate_limiter(self) -> Any:
        return ItemExponentialFailureRateLimiter(base_delay=0.01, max_delay=0.05)

    def reconcile(self, key: str) -> Requeue | None:
        self.calls.append(key)
        if key.endswith("/bad"):
            raise TerminalError("spec can never work")
        if key.endswith("/flaky") and self.calls.count(key) < 3:
            raise RuntimeError("transient")
        return None


def test_terminal_error_is_not_retried(kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    controller = Terminal()
    registry = CollectorRegistry()
    with running(kube_client, ns, controller, registry=registry):
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "bad"}}, ns)
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "flaky"}}, ns)
        wait_for(lambda: controller.calls.count(f"{ns}/flaky") == 3, timeout=30)
        assert controller.calls.count(f"{ns}/bad") == 1
        assert registry.get_sample_value("controller_runtime_terminal_reconcile_errors_total",
                                         {"controller": "terminal"}) == 1


class _Throttling(http.server.BaseHTTPRequestHandler):
    """Answers the first GET with 429 + Retry-After: 1, then with a ConfigMap."""

    times: ClassVar[list[float]] = []

    def do_GET(self) -> None:
        self.times.append(time.monotonic())
        if len(self.times) == 1:
            body = (b'{"kind":"Status","apiVersion":"v1","status":"Failure",'
                    b'"reason":"TooManyRequests","code":429}')
            self.send_response(429)
            self.send_header("Retry-After", "1")
        else:
            body = b'{"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"a"}}'
            self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class Getting(Controller):
    resource = CONFIGMAPS

    def reconcile(self, key: str) -> Requeue | None:
        self.client.get(CONFIGMAPS, "a", "ns")
        return None


def test_429_from_the_server_is_retried_no_sooner_than_retry_after() -> None:
    _Throttling.times = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Throttling)
    serving = threading.Thread(target=server.serve_forever, name="pycontroller-test-429")
    serving.start()
    cfg = k8s_client.Configuration()
    cfg.host = f"http://127.0.0.1:{server.server_address[1]}"
    client = Client(cfg)
    controller = Getting()
    queue: RateLimitingQueue[str] = RateLimitingQueue(
        name="getting", rate_limiter=ItemExponentialFailureRateLimiter(base_delay=0.001))
    controller.bind(client=client, listers={CONFIGMAPS: Lister(ThreadSafeStore())},
                    queue=queue)
    controller.start(threading.Event())
    try:
        queue.add("ns/a")
        wait_for(lambda: len(_Throttling.times) == 2, timeout=10)
        assert _Throttling.times[1] - _Throttling.times[0] >= 1.0
    finally:
        controller.stop(5.0)
        server.shutdown()
        serving.join()
        server.server_close()
        client.close()


class Announcing(Controller):
    resource = CONFIGMAPS
    workers = 3

    def reconcile(self, key: str) -> Requeue | None:
        obj = self.lister.get_by_key(key)
        if obj is not None:
            self.events.normal(obj, "Seen", f"reconciled {key}")
        return None


def test_events_metrics_and_the_manager_wiring(kube_client: Client,
                                               kube_namespace: str) -> None:
    from pycontroller.client import EVENTS_K8S_IO

    ns = kube_namespace
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, ns)
    registry = CollectorRegistry()
    with running(kube_client, ns, Announcing(), registry=registry):
        def posted() -> list[Any]:
            return [e for e in kube_client.list_all(EVENTS_K8S_IO, ns)
                    if e.get("reason") == "Seen"]
        events = wait_for(posted, timeout=30)
        assert events[0]["reportingController"] == "announcing"
        assert events[0]["regarding"]["name"] == "a"
        label = {"controller": "announcing"}
        assert registry.get_sample_value(
            "controller_runtime_max_concurrent_reconciles", label) == 3
        assert registry.get_sample_value("controller_runtime_active_workers", label) == 0
        caches = {s.labels["name"]: s.value
                  for m in registry.collect() if m.name == "informer_cache_items"
                  for s in m.samples}
        assert any("configmaps" in name and value >= 1 for name, value in caches.items())


def test_reconcile_without_a_manager(kube_client: Client, kube_namespace: str) -> None:
    """The documented way to unit-test a reconcile (docs/tutorial.md)."""
    from examples.configmap_stamper.controller import ANNOTATION, ConfigMapStamper
    from pycontroller import EventRecorder

    cm = kube_client.create(CONFIGMAPS, {"metadata": {"name": "a"}, "data": {"k": "1"}},
                            kube_namespace)
    store: ThreadSafeStore[Any] = ThreadSafeStore()
    store.add(cm)
    stamper = ConfigMapStamper()
    stamper.bind(client=kube_client, listers={CONFIGMAPS: Lister(store)},
                 events=EventRecorder(kube_client, "stamper"))
    assert stamper.reconcile(f"{kube_namespace}/a") is None
    stamped = kube_client.get(CONFIGMAPS, "a", kube_namespace)
    assert ANNOTATION in stamped["metadata"]["annotations"]
    store.update(stamped)
    assert stamper.process(f"{kube_namespace}/a") is None  # already stamped: no write
    assert kube_client.get(CONFIGMAPS, "a", kube_namespace)["metadata"]["resourceVersion"] \
        == stamped["metadata"]["resourceVersion"]


def test_stop_never_lets_a_reconcile_waiting_for_its_writes_run_on_a_stale_cache(
        kube_client: Client, kube_namespace: str) -> None:
    """A reconcile held back until the cache shows its key's last write is abandoned by
    ``stop()`` (shutdown, or a lost lease), not released onto the stale cache."""
    ns = kube_namespace
    store: ThreadSafeStore[Any] = ThreadSafeStore()  # a cache that never catches up
    store.add(kube_client.create(CONFIGMAPS, {"metadata": {"name": "counter"}}, ns))
    controller = Incrementing(read_your_writes=True)
    controller.read_your_writes_timeout = 120.0
    queue: RateLimitingQueue[str] = RateLimitingQueue(name="incrementing")
    controller.bind(client=kube_client, listers={CONFIGMAPS: Lister(store)}, queue=queue)
    stop = threading.Event()
    controller.start(stop)
    try:
        queue.add(f"{ns}/counter")
        wait_for(lambda: controller.reconciles == 1, timeout=30)
        assert controller.written == 1
        queue.add(f"{ns}/counter")  # waits for the write above, which the cache never shows
        wait_for(lambda: controller.healthy() == (True, "ok") and controller._busy,
                 timeout=30, message="second reconcile waiting for its own write")
    finally:
        started = time.monotonic()
        assert controller.stop(10.0)
        assert time.monotonic() - started < 5.0  # prompt: the wait is released
        stop.set()
    assert controller.reconciles == 1  # the stale cache was never reconciled
    assert controller.conflicts == 0


class FinalizerReader(Controller):
    """Records whether each reconcile's cached object carries the declared finalizer."""

    resource = CONFIGMAPS
    finalizer = FINALIZER

    def __init__(self) -> None:
        super().__init__()
        self.saw_finalizer: list[bool] = []

    def reconcile(self, key: str) -> Requeue | None:
        obj = self.lister.get_by_key(key)
        if obj is not None:
            self.saw_finalizer.append(FINALIZER in (obj["metadata"].get("finalizers") or []))
        return None


def test_the_reconcile_after_adding_the_finalizer_reads_a_cache_that_shows_it(
        kube_control_plane: Any, kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    own = connect(kube_control_plane.kubeconfig)
    DelayedWatch(own, delay=0.5)
    controller = FinalizerReader()
    try:
        with running(own, ns, controller):
            kube_client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, ns)
            wait_for(lambda: controller.saw_finalizer, timeout=30)
            # The library's own patch is a write of this reconcile: the cache shows it.
            assert controller.saw_finalizer[0] is True
            kube_client.patch(CONFIGMAPS, "a", {"metadata": {"finalizers": None}}, ns)
    finally:
        own.close()


class ParallelParent(Controller):
    """A Secret owns three ConfigMaps, created in parallel (``parallelize``) when missing."""

    resource = SECRETS
    owns = (CONFIGMAPS,)
    # Only the test triggers reconciles.
    predicates = (Predicate(update=lambda old, new: False),)

    def __init__(self) -> None:
        super().__init__()
        self.children_seen: list[int] = []
        self.conflicts = 0

    def reconcile(self, key: str) -> Requeue | None:
        parent = self.lister.get_by_key(key)
        if parent is None:
            return None
        ns = parent["metadata"]["namespace"]
        names = [f"{parent['metadata']['name']}-{i}" for i in range(3)]
        cached = self.lister_for(CONFIGMAPS)
        missing = [n for n in names if cached.get_by_key(f"{ns}/{n}") is None]
        self.children_seen.append(len(names) - len(missing))

        def create(i: int) -> None:
            child = {"apiVersion": "v1", "kind": "ConfigMap",
                     "metadata": {"name": missing[i], "namespace": ns}}
            set_controller_reference({"apiVersion": "v1", **parent}, child)
            try:
                self.client.create(CONFIGMAPS, child, ns)
            except ConflictError:
                self.conflicts += 1  # the cache was older than our own creates

        parallelize(3, len(missing), create)
        return None


def test_writes_made_on_parallelize_threads_are_read_back_too(
        kube_control_plane: Any, kube_client: Client, kube_namespace: str) -> None:
    ns = kube_namespace
    own = connect(kube_control_plane.kubeconfig)
    DelayedWatch(own, delay=0.5)  # ConfigMap events: the children
    controller = ParallelParent()
    try:
        with running(own, ns, controller):
            kube_client.create(SECRETS, {"metadata": {"name": "p"}}, ns)
            wait_for(lambda: controller.children_seen == [0], timeout=30)
            controller.queue.add(f"{ns}/p")  # at once: the cache has not caught up
            # The children's events enqueue the parent again: more reconciles may follow.
            wait_for(lambda: len(controller.children_seen) >= 2, timeout=30)
    finally:
        own.close()
    assert controller.children_seen[:2] == [0, 3]
    assert controller.conflicts == 0


@pytest.mark.parametrize("deleting", [False, True], ids=["add", "remove"])
def test_a_finalizer_patch_from_a_stale_cache_is_refused_not_applied(
        kube_client: Client, kube_namespace: str, deleting: bool) -> None:
    """Another controller changes the finalizers after our cache read (adds its own; or,
    while the object is being deleted, removes its own): our patch, built from the stale
    list, is refused with 409 instead of overwriting the list."""
    import structlog

    from pycontroller.controller._finalizer import handle_finalizer

    ns = kube_namespace
    other = "other.example.com/keep"
    kube_client.create(CONFIGMAPS, {"metadata": {
        "name": "a", "finalizers": [FINALIZER, other] if deleting else []}}, ns)
    if deleting:
        kube_client.delete(CONFIGMAPS, "a", ns)
    stale = kube_client.get(CONFIGMAPS, "a", ns)  # what our cache holds
    theirs = [other] if not deleting else []
    fresh = dict(kube_client.get(CONFIGMAPS, "a", ns))
    fresh["metadata"] = {**fresh["metadata"], "finalizers": [
        f for f in [*(fresh["metadata"].get("finalizers") or []), *theirs]
        if not (deleting and f == other)]}
    kube_client.replace(CONFIGMAPS, fresh)  # the other controller's write
    with pytest.raises(ConflictError):
        handle_finalizer(kube_client, CONFIGMAPS, FINALIZER, stale,
                         cleanup=lambda obj: None, log=structlog.get_logger())
    now = kube_client.get(CONFIGMAPS, "a", ns)["metadata"]["finalizers"]
    assert now == ([FINALIZER] if deleting else [other])
    kube_client.patch(CONFIGMAPS, "a", {"metadata": {"finalizers": None}}, ns)


class OutOfScope(Controller):
    """Writes objects its informers never deliver: a Secret its Watch's label selector
    does not select, a ConfigMap in another namespace; and takes one Secret out of scope."""

    resource = CONFIGMAPS
    watches = (Watch(SECRETS, map_to=lambda obj: [], label_selector="app=mine"),)
    predicates = (Predicate(update=lambda old, new: False),)  # only the test triggers

    def __init__(self, other_namespace: str) -> None:
        super().__init__()
        self.other = other_namespace
        self.reconciles = 0
        self.saw_leaving: list[bool] = []

    def reconcile(self, key: str) -> Requeue | None:
        obj = self.lister.get_by_key(key)
        if obj is None:
            return None
        ns, n = obj["metadata"]["namespace"], self.reconciles
        secrets = self.lister_for(SECRETS)
        self.saw_leaving.append(secrets.get_by_key(f"{ns}/leaving") is not None)
        self.client.create(SECRETS, {"metadata": {"name": f"unlabelled-{n}"}}, ns)
        self.client.create(CONFIGMAPS, {"metadata": {"name": f"elsewhere-{n}"}}, self.other)
        if n == 0:  # in the cache now; this write takes it out of the Watch's scope
            self.client.patch(SECRETS, "leaving", {"metadata": {"labels": {"app": None}}}, ns)
        self.reconciles += 1
        return None


def test_writes_outside_the_informers_scope_are_not_awaited(
        kube_client: Client, kube_namespace: str) -> None:
    """Their watch events never come: waiting for them would stall every next reconcile
    for read_your_writes_timeout. A write that takes a cached object out of scope is still
    awaited, until the cache drops it."""
    from pycontroller import NAMESPACES

    ns = kube_namespace
    other = f"{ns}-other"
    kube_client.create(NAMESPACES, {"metadata": {"name": other}})
    kube_client.create(SECRETS, {"metadata": {"name": "leaving", "labels": {"app": "mine"}}},
                       ns)
    controller = OutOfScope(other)
    registry = CollectorRegistry()
    try:
        with running(kube_client, ns, controller, registry=registry):
            wait_for(lambda: controller.lister_for(SECRETS).get_by_key(f"{ns}/leaving"),
                     timeout=30)
            kube_client.create(CONFIGMAPS, {"metadata": {"name": "a"}}, ns)
            wait_for(lambda: controller.reconciles == 1, timeout=30)
            started = time.monotonic()
            controller.queue.add(f"{ns}/a")
            wait_for(lambda: controller.reconciles == 2, timeout=30)
            took = time.monotonic() - started
    finally:
        for obj in kube_client.list_all(CONFIGMAPS, other):
            kube_client.delete(CONFIGMAPS, obj["metadata"]["name"], other)
        kube_client.delete(NAMESPACES, other)
    assert controller.saw_leaving == [True, False]
    assert registry.get_sample_value("pycontroller_read_your_writes_timeouts_total",
                                     {"controller": "outofscope"}) == 0
    assert took < 3.0, f"the second reconcile waited {took:.1f}s"
