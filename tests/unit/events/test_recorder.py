"""EventRecorder's correlation logic (series, token buckets, buffer) against a stub sink.

The API server itself is exercised in tests/integration/test_events.py.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from prometheus_client import CollectorRegistry

from pycontroller import Client, EventRecorder
from pycontroller.client import Resource
from pycontroller.errors import NotFoundError, ServerError
from pycontroller.metrics import PrometheusMetricsProvider
from pycontroller.testing import FakeClock


class StubClient:
    """Records creates and patches; can block or fail them."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Any]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.inside = threading.Event()
        self.fail: list[Exception] = []
        self._lock = threading.Lock()

    def _enter(self) -> None:
        self.inside.set()
        self.gate.wait(10)
        with self._lock:
            if self.fail:
                raise self.fail.pop(0)

    def create(self, resource: Resource, body: dict[str, Any],
               namespace: str | None = None) -> Any:
        self._enter()
        with self._lock:
            self.calls.append(("create", body["metadata"]["name"], body))
        return body

    def patch(self, resource: Resource, name: str, patch: Any,
              namespace: str | None = None, **kwargs: Any) -> Any:
        self._enter()
        with self._lock:
            self.calls.append(("patch", name, patch))
        return patch

    def snapshot(self) -> list[tuple[str, str, Any]]:
        with self._lock:
            return list(self.calls)


def pod(name: str = "p", uid: str = "u1", rv: str = "1") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "ns", "uid": uid, "resourceVersion": rv}}


def wait_until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


@pytest.fixture
def stub() -> StubClient:
    return StubClient()


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def make(stub: StubClient, kube_fake_clock: FakeClock, registry: CollectorRegistry
         ) -> Iterator[Callable[..., EventRecorder]]:
    made: list[EventRecorder] = []

    def factory(**kwargs: Any) -> EventRecorder:
        rec = EventRecorder(cast(Client, stub), "test-controller", instance="i-1",
                            clock=kube_fake_clock,
                            metrics=PrometheusMetricsProvider(registry=registry), **kwargs)
        made.append(rec)
        return rec

    yield factory
    for rec in made:
        rec.stop(timeout=5)


def dropped(registry: CollectorRegistry, reason: str) -> float:
    value = registry.get_sample_value("event_recorder_dropped_events_total",
                                      {"component": "test-controller", "reason": reason})
    return value or 0.0


def test_event_body_is_an_events_k8s_io_v1_event(make: Callable[..., EventRecorder],
                                                  stub: StubClient) -> None:
    rec = make()
    rec.start()
    rec.warning(pod(), "BackOff", "restarting", action="Restart")
    wait_until(lambda: len(stub.snapshot()) == 1)
    verb, name, body = stub.snapshot()[0]
    assert verb == "create" and name.startswith("p.")
    assert body["apiVersion"] == "events.k8s.io/v1" and body["kind"] == "Event"
    assert body["metadata"]["namespace"] == "ns"
    assert body["regarding"] == {"apiVersion": "v1", "kind": "Pod", "name": "p",
                                 "namespace": "ns", "uid": "u1", "resourceVersion": "1"}
    assert (body["type"], body["reason"], body["action"], body["note"]) == (
        "Warning", "BackOff", "Restart", "restarting")
    assert (body["reportingController"], body["reportingInstance"]) == ("test-controller",
                                                                         "i-1")
    assert body["eventTime"].endswith("Z") and "." in body["eventTime"]
    assert "series" not in body


def test_repeats_become_one_series(make: Callable[..., EventRecorder], stub: StubClient,
                                   kube_fake_clock: FakeClock) -> None:
    rec = make()
    for i in range(10):  # resourceVersion changes do not break the series
        rec.warning(pod(rv=str(i)), "BackOff", "restarting")
    rec.start()
    wait_until(lambda: len(stub.snapshot()) == 1)
    (verb, name, body), = stub.snapshot()
    assert verb == "create" and "series" not in body
    kube_fake_clock.step(1.0)  # the series interval: one patch carries the other nine
    wait_until(lambda: len(stub.snapshot()) == 2)
    verb, patched_name, patch = stub.snapshot()[1]
    assert (verb, patched_name, patch["series"]["count"]) == ("patch", name, 10)
    assert set(patch) == {"series"} and patch["series"]["lastObservedTime"].endswith("Z")
    rec.warning(pod(), "BackOff", "restarting")
    rec.warning(pod(), "BackOff", "restarting")
    time.sleep(0.1)
    assert len(stub.snapshot()) == 2  # not before the interval has passed
    kube_fake_clock.step(1.0)
    wait_until(lambda: len(stub.snapshot()) == 3)
    assert stub.snapshot()[2][2]["series"]["count"] == 12


def test_different_messages_reasons_or_types_are_separate_events(
        make: Callable[..., EventRecorder], stub: StubClient) -> None:
    rec = make()
    rec.warning(pod(), "BackOff", "a")
    rec.warning(pod(), "BackOff", "b")
    rec.warning(pod(), "Other", "a")
    rec.normal(pod(), "BackOff", "a")
    rec.warning(pod("q", uid="u2"), "BackOff", "a")
    rec.start()
    wait_until(lambda: len(stub.snapshot()) == 5)
    assert all(v == "create" for v, _, _ in stub.snapshot())
    assert len({n for _, n, _ in stub.snapshot()}) == 5


def test_a_repeat_after_the_window_starts_a_new_event(make: Callable[..., EventRecorder],
                                                      stub: StubClient,
                                                      kube_fake_clock: FakeClock) -> None:
    rec = make(series_window=360.0)
    rec.start()
    rec.warning(pod(), "BackOff", "x")
    wait_until(lambda: len(stub.snapshot()) == 1)
    kube_fake_clock.step(361.0)
    rec.warning(pod(), "BackOff", "x")
    wait_until(lambda: len(stub.snapshot()) == 2)
    assert [v for v, _, _ in stub.snapshot()] == ["create", "create"]
    assert "series" not in stub.snapshot()[1][2]


def test_token_bucket_bounds_new_events_per_object(make: Callable[..., EventRecorder],
                                                   stub: StubClient, kube_fake_clock: FakeClock,
                                                   registry: CollectorRegistry) -> None:
    rec = make()  # client-go defaults: burst 25, one token per 300 s
    for i in range(40):
        rec.warning(pod(), f"Reason{i}", "crash")
    rec.warning(pod("other", uid="u2"), "Reason", "crash")  # another object: own bucket
    rec.start()
    wait_until(lambda: dropped(registry, "rate_limited") == 15)
    assert len(stub.snapshot()) == 26
    kube_fake_clock.step(299.0)
    rec.warning(pod(), "Late", "still crashing")
    wait_until(lambda: dropped(registry, "rate_limited") == 16)
    kube_fake_clock.step(2.0)  # 301 s since the burst: one token
    rec.warning(pod(), "Later", "still crashing")
    wait_until(lambda: len(stub.snapshot()) == 27)
    assert stub.snapshot()[-1][2]["reason"] == "Later"


def test_series_update_without_a_token_waits_and_keeps_the_count(
        make: Callable[..., EventRecorder], stub: StubClient, kube_fake_clock: FakeClock,
        registry: CollectorRegistry) -> None:
    rec = make(burst=2, refill_seconds=100.0)
    rec.start()
    rec.warning(pod(), "BackOff", "x")
    wait_until(lambda: len(stub.snapshot()) == 1)
    rec.warning(pod(), "BackOff", "x")
    kube_fake_clock.step(1.0)
    wait_until(lambda: len(stub.snapshot()) == 2)  # second token: count 2
    for _ in range(5):
        rec.warning(pod(), "BackOff", "x")
    kube_fake_clock.step(1.0)
    time.sleep(0.2)
    assert len(stub.snapshot()) == 2  # no token
    kube_fake_clock.step(100.0)
    wait_until(lambda: len(stub.snapshot()) == 3)
    assert stub.snapshot()[2][2]["series"]["count"] == 7
    assert dropped(registry, "rate_limited") == 0


def test_full_buffer_drops_without_blocking(make: Callable[..., EventRecorder],
                                            stub: StubClient,
                                            registry: CollectorRegistry) -> None:
    rec = make(buffer_size=10)
    stub.gate.clear()  # the API server hangs
    rec.start()
    rec.warning(pod(), "First", "x")
    assert stub.inside.wait(10)
    started = time.monotonic()
    for i in range(1000):
        rec.warning(pod(), f"R{i}", "x")
    elapsed = time.monotonic() - started
    assert elapsed < 2.0  # 1000 calls while the worker is stuck in a write
    assert dropped(registry, "buffer_full") == 990
    stub.gate.set()
    rec.stop(timeout=10)
    assert len(stub.snapshot()) == 11  # the first and the 10 buffered ones
    rec.warning(pod(), "AfterStop", "x")
    assert dropped(registry, "stopped") == 1


def test_patch_of_an_expired_event_creates_it_again(make: Callable[..., EventRecorder],
                                                    stub: StubClient,
                                                    kube_fake_clock: FakeClock) -> None:
    rec = make()
    rec.start()
    rec.warning(pod(), "BackOff", "x")
    wait_until(lambda: len(stub.snapshot()) == 1)
    stub.fail.append(NotFoundError(404, "NotFound", "gone"))
    rec.warning(pod(), "BackOff", "x")
    kube_fake_clock.step(1.0)
    wait_until(lambda: len(stub.snapshot()) == 2)
    verb, _, body = stub.snapshot()[1]
    assert verb == "create" and body["series"]["count"] == 2


def test_transient_failures_are_retried_later(make: Callable[..., EventRecorder],
                                              stub: StubClient, kube_fake_clock: FakeClock) -> None:
    rec = make()
    stub.fail.append(ServerError(503, "ServiceUnavailable", "busy"))
    rec.start()
    rec.warning(pod(), "BackOff", "x")
    wait_until(lambda: not stub.fail)
    time.sleep(0.1)
    assert stub.snapshot() == []
    kube_fake_clock.step(13.0)  # 10 s, jittered by up to 25 %
    wait_until(lambda: len(stub.snapshot()) == 1)


def test_state_is_bounded_by_the_cache_size(make: Callable[..., EventRecorder],
                                            stub: StubClient) -> None:
    rec = make(cache_size=8, buffer_size=500)
    for i in range(100):
        rec.normal(pod(f"p{i}", uid=f"u{i}"), "Created", "x")
    rec.start()
    wait_until(lambda: len(stub.snapshot()) == 100)
    assert len(rec._series) <= 8 and len(rec._buckets) <= 8


def test_arguments_are_validated(stub: StubClient) -> None:
    client = cast(Client, stub)
    with pytest.raises(ValueError, match="component"):
        EventRecorder(client, "Bad Component")
    rec = EventRecorder(client, "example.com/website")
    assert rec.instance.startswith("example.com/website-")
    with pytest.raises(ValueError, match="reason"):
        rec.normal(pod(), "", "x")
    with pytest.raises(ValueError, match="action"):
        rec.normal(pod(), "R", "x", action="a" * 129)
    with pytest.raises(ValueError, match="apiVersion, kind"):
        rec.normal({"metadata": {"name": "x"}}, "R", "x")
    with pytest.raises(RuntimeError):
        rec.stop()
        rec.start()


def test_long_notes_are_cut_to_1024_bytes(make: Callable[..., EventRecorder],
                                          stub: StubClient) -> None:
    rec = make()
    rec.start()
    rec.normal(pod(), "Long", "é" * 1000)
    wait_until(lambda: len(stub.snapshot()) == 1)
    note = stub.snapshot()[0][2]["note"]
    assert len(note.encode()) <= 1024 and note == "é" * 512


def test_concurrent_callers_lose_nothing_uncounted(make: Callable[..., EventRecorder],
                                                   stub: StubClient,
                                                   registry: CollectorRegistry) -> None:
    rec = make(buffer_size=50, cache_size=10_000)
    rec.start()

    def caller(t: int) -> None:
        for i in range(200):
            rec.normal(pod(f"p{t}-{i}", uid=f"u{t}-{i}"), "Created", "x")

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rec.stop(timeout=10)
    written = len(stub.snapshot())
    assert written + dropped(registry, "buffer_full") == 1600
    assert len({name for _, name, _ in stub.snapshot()}) == written  # unique names


def test_reason_action_and_message_must_be_strings(stub: StubClient) -> None:
    """``warning(obj, "Failed", exc)`` is an easy slip: a clear TypeError at the call,
    not an AttributeError from inside (nor a list reason the server rejects later)."""
    rec = EventRecorder(cast(Client, stub), "example.com/website")
    with pytest.raises(TypeError, match="message must be a str, not RuntimeError"):
        rec.warning(pod(), "Failed", RuntimeError("boom"))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reason must be a str"):
        rec.normal(pod(), ["R"], "x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="action must be a str"):
        rec.normal(pod(), "R", "x", action=("a",))  # type: ignore[arg-type]
