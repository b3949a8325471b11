"""LeaderElector against an in-memory lock and a FakeClock (spec §6.2-6.3, checklist 67-74)."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from pycontroller._util._wait import wait_for
from pycontroller.errors import ConflictError, NotFoundError, TransportError
from pycontroller.leaderelection import (
    JITTER_FACTOR,
    LeaderElectionConfig,
    LeaderElectionRecord,
    LeaderElector,
)
from pycontroller.leaderelection._resource_lock import record_bytes
from pycontroller.testing._fake_clock import FakeClock

CFG = LeaderElectionConfig(lease_duration=15, renew_deadline=10, retry_period=2, name="t")
MAX_ACQUIRE_GAP = CFG.retry_period * (1 + JITTER_FACTOR)


# -- config (checklist 67) -------------------------------------------------------------
def test_config_defaults_match_kubernetes_components() -> None:
    cfg = LeaderElectionConfig()
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15, 10, 2)
    assert not cfg.release_on_cancel


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"lease_duration": 10, "renew_deadline": 10}, "lease_duration .* 1.2 x renew_deadline"),
    ({"lease_duration": 5, "renew_deadline": 10}, "lease_duration .* 1.2 x renew_deadline"),
    # Accepted before issue 8: a candidate could take over while the leader still led.
    ({"lease_duration": 11, "renew_deadline": 10, "retry_period": 3},
     "lease_duration .* 1.2 x renew_deadline"),
    # The Lease holds whole seconds: 12.9 is 12, and 12 is not more than 1.2 x 10.
    ({"lease_duration": 12.9, "renew_deadline": 10}, r"12 whole s .* 1.2 x renew_deadline"),
    ({"renew_deadline": 2.4, "retry_period": 2}, "renew_deadline .* 1.2 x retry_period"),
    ({"renew_deadline": 2.0, "retry_period": 2}, "renew_deadline .* 1.2 x retry_period"),
    ({"retry_period": 0}, "retry_period must be a finite number > 0"),
    ({"renew_deadline": -1}, "renew_deadline must be a finite number > 0"),
    ({"lease_duration": float("inf")}, "lease_duration must be a finite number > 0"),
    ({"renew_deadline": float("nan")}, "renew_deadline must be a finite number > 0"),
    ({"lease_duration": 0.9, "renew_deadline": 0.5, "retry_period": 0.1}, ">= 1 s"),
])
def test_config_rejects_unsafe_timings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LeaderElectionConfig(**kwargs)  # type: ignore[arg-type]


def test_config_accepts_just_valid_timings() -> None:
    LeaderElectionConfig(lease_duration=13, renew_deadline=10.8, retry_period=8.9)
    LeaderElectionConfig(lease_duration=3, renew_deadline=2, retry_period=0.5)


# -- an in-memory lock ----------------------------------------------------------------
class Server:
    """The 'API server': one record with a version; faults can be switched on."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.record: LeaderElectionRecord | None = None
        self.version = 0
        self.writes: list[LeaderElectionRecord] = []
        self.fail: Exception | None = None
        self.block: threading.Event | None = None  # calls wait for it to be set

    def fault(self) -> None:
        block = self.block
        if block is not None:
            assert block.wait(10), "test forgot to unblock the fake server"
        if self.fail is not None:
            raise self.fail

    def put(self, record: LeaderElectionRecord) -> None:
        """Write as another process would (changes the version)."""
        with self.lock:
            self.record, self.version = record, self.version + 1
            self.writes.append(record)


class FakeLock:
    """ResourceLock on a Server, with optimistic concurrency on its version."""

    def __init__(self, server: Server, identity: str) -> None:
        self.server = server
        self._identity = identity
        self.seen: int | None = None

    @property
    def identity(self) -> str:
        return self._identity

    def get(self) -> tuple[LeaderElectionRecord, bytes]:
        self.server.fault()
        with self.server.lock:
            if self.server.record is None:
                raise NotFoundError(404, "NotFound", "lease not found")
            self.seen = self.server.version
            return self.server.record, record_bytes(self.server.record)

    def create(self, record: LeaderElectionRecord) -> None:
        self.server.fault()
        with self.server.lock:
            if self.server.record is not None:
                raise ConflictError(409, "AlreadyExists", "exists")
        self.server.put(record)
        self.seen = self.server.version

    def update(self, record: LeaderElectionRecord) -> None:
        self.server.fault()
        with self.server.lock:
            if self.seen != self.server.version:
                raise ConflictError(409, "Conflict", "stale")
        self.server.put(record)
        self.seen = self.server.version

    def describe(self) -> str:
        return "ns/lock"


class Candidate:
    """An elector plus a record of its callbacks."""

    def __init__(self, server: Server, identity: str, clock: FakeClock,
                 config: LeaderElectionConfig = CFG) -> None:
        self.started = threading.Event()
        self.stopped = 0
        self.leading_event: threading.Event | None = None
        self.new_leaders: list[str] = []
        self.stopped_at: float | None = None
        self.clock = clock
        self.elector = LeaderElector(
            FakeLock(server, identity), config, on_started_leading=self._start,
            on_stopped_leading=self._stop, on_new_leader=self.new_leaders.append, clock=clock)

    def _start(self, stop: threading.Event) -> None:
        self.leading_event = stop
        self.started.set()
        assert stop.wait(10), "leading event was never set"

    def _stop(self) -> None:
        self.stopped += 1
        self.stopped_at = self.clock.now()


@contextmanager
def running(*candidates: Candidate) -> Iterator[threading.Event]:
    stop = threading.Event()
    threads = [threading.Thread(target=c.elector.run, args=(stop,),
                                name=f"pycontroller-test-{c.elector.identity}")
               for c in candidates]
    for t in threads:
        t.start()
    try:
        yield stop
    finally:
        stop.set()
        for t in threads:
            t.join(10)
            assert not t.is_alive(), "run() did not return after stop"


def settle(clock: FakeClock, waiters: int) -> None:
    """Wait (real time, bounded) until every elector acted on the current fake time.

    Short polls: ``FakeClock.sleep`` re-registers after a step without notifying.
    """
    deadline = time.monotonic() + 5.0
    while not clock.wait_for_waiters(waiters, after_step=True, timeout=0.01):
        assert time.monotonic() < deadline, "elector did not settle"


def advance_until(clock: FakeClock, cond: Callable[[], bool], *, waiters: int = 1,
                  step: float = 0.25, limit: float = 120.0) -> float:
    """Step fake time until ``cond`` holds; return the fake time that took.

    Time moves only once the electors have acted on the current time (or ``cond`` holds).
    """
    start = clock.now()
    deadline = time.monotonic() + 30.0
    while True:
        settled = clock.wait_for_waiters(waiters, after_step=True, timeout=0.01)
        if cond():
            return clock.now() - start
        assert time.monotonic() < deadline, "electors did not settle"
        if settled:
            assert clock.now() - start < limit, "condition never held"
            clock.step(step)


def advance_by(clock: FakeClock, seconds: float) -> None:
    start = clock.now()
    advance_until(clock, lambda: clock.now() - start >= seconds)


def record(holder: str, transitions: int = 0) -> LeaderElectionRecord:
    now = datetime.now(UTC)
    return LeaderElectionRecord(holder_identity=holder, lease_duration_seconds=15,
                                acquire_time=now, renew_time=now,
                                leader_transitions=transitions)


@pytest.fixture
def server() -> Server:
    return Server()


# -- acquire / observe / take over ----------------------------------------------------
def test_first_candidate_creates_the_record_and_leads(
        server: Server, kube_fake_clock: FakeClock) -> None:
    me = Candidate(server, "me", kube_fake_clock)
    with capture_logs() as logs, running(me):
        assert me.started.wait(5)
        assert me.elector.is_leader() and me.elector.get_leader() == "me"
        assert server.record is not None
        assert server.record.holder_identity == "me"
        assert server.record.leader_transitions == 0
        assert server.record.lease_duration_seconds == 15
    assert me.stopped == 1 and not me.elector.is_leader()
    assert me.leading_event is not None and me.leading_event.is_set()
    assert me.new_leaders == ["me"]
    assert [e["event"] for e in logs if e["event"] != "leader_renewed"][:2] == [
        "leader_observed", "leader_acquired"]


def test_leader_renews_every_retry_period(server: Server, kube_fake_clock: FakeClock) -> None:
    me = Candidate(server, "me", kube_fake_clock)
    with running(me):
        assert me.started.wait(5)
        advance_until(kube_fake_clock, lambda: len(server.writes) >= 6)
        renewals = server.writes
        assert len({w.renew_time for w in renewals}) == len(renewals)
        assert {w.acquire_time for w in renewals} == {renewals[0].acquire_time}
        assert kube_fake_clock.now() - 1000 <= 5 * CFG.retry_period + 1  # one write per period


def test_candidate_waits_while_holder_renews_then_takes_over(
        server: Server, kube_fake_clock: FakeClock) -> None:
    server.put(record("other", transitions=4))
    me = Candidate(server, "me", kube_fake_clock)
    with running(me):
        assert kube_fake_clock.wait_for_waiters(1)
        # The holder keeps renewing: its record changes every 5 s, we never take over.
        for _ in range(6):
            advance_by(kube_fake_clock, 5)
            server.put(record("other", transitions=4))
        assert not me.started.is_set() and me.elector.get_leader() == "other"
        # It stops. We see its last change at our next attempt, and take over at the first
        # attempt lease_duration after that: never sooner, at most two attempt gaps later.
        taken = advance_until(kube_fake_clock, me.started.is_set)
        assert CFG.lease_duration <= taken <= CFG.lease_duration + 2 * MAX_ACQUIRE_GAP + 0.5
        assert server.record is not None
        assert server.record.holder_identity == "me"
        assert server.record.leader_transitions == 5
    assert me.new_leaders == ["other", "me"]


def test_remote_timestamps_are_not_trusted(server: Server, kube_fake_clock: FakeClock) -> None:
    # A record renewed "long ago" by the holder's clock is still valid for a full
    # lease_duration from when we first saw it.
    ancient = datetime(2000, 1, 1, tzinfo=UTC)
    server.put(dataclasses.replace(record("other"), acquire_time=ancient, renew_time=ancient))
    me = Candidate(server, "me", kube_fake_clock)
    with running(me):
        taken = advance_until(kube_fake_clock, me.started.is_set)
        assert taken >= CFG.lease_duration


def test_on_new_leader_fires_once_per_distinct_holder(
        server: Server, kube_fake_clock: FakeClock) -> None:
    server.put(record("a"))
    me = Candidate(server, "me", kube_fake_clock)
    with running(me):
        for holder in ("a", "a", "b", "b", "a"):
            advance_by(kube_fake_clock, 5)
            server.put(record(holder))
        advance_until(kube_fake_clock, lambda: me.elector.get_leader() == "a")
        wait_for(lambda: len(me.new_leaders) >= 3, timeout=5, message="notifications")
    assert me.new_leaders == ["a", "b", "a"]


def test_two_candidates_never_lead_together(server: Server, kube_fake_clock: FakeClock) -> None:
    a, b = Candidate(server, "a", kube_fake_clock), Candidate(server, "b", kube_fake_clock)
    with running(a, b):
        advance_until(kube_fake_clock, lambda: a.started.is_set() or b.started.is_set(), waiters=2)
        for _ in range(100):
            settle(kube_fake_clock, 2)
            assert a.elector.is_leader() != b.elector.is_leader()
            kube_fake_clock.step(0.5)
    assert server.record is not None and server.record.leader_transitions == 0


# -- stepping down --------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["error", "hang"])
# retry 3: the deadline (10) falls inside a retry period; the elector used to sleep past it
# and step down 12 s after the last renewal (issue 8).
@pytest.mark.parametrize("retry", [2.0, 3.0])
def test_leader_steps_down_within_renew_deadline(
        server: Server, kube_fake_clock: FakeClock, fault: str, retry: float) -> None:
    cfg = dataclasses.replace(CFG, retry_period=retry)
    me = Candidate(server, "me", kube_fake_clock, cfg)
    unblock = threading.Event()
    try:
        with capture_logs() as logs, running(me):
            assert me.started.wait(5)
            advance_until(kube_fake_clock, lambda: len(server.writes) >= 3)
            if fault == "error":
                server.fail = TransportError("connection refused")
            else:
                server.block = unblock
            last_ok = kube_fake_clock.now()  # the last renewal started no later than this
            advance_until(kube_fake_clock, lambda: me.stopped == 1, step=0.1)
            assert me.stopped_at is not None
            assert me.stopped_at - last_ok <= cfg.renew_deadline + 0.2
            assert not me.elector.is_leader()
            assert me.leading_event is not None and me.leading_event.is_set()
            unblock.set()
    finally:
        unblock.set()
    assert me.stopped == 1
    events = [e for e in logs if e["event"] in ("leader_lost", "leader_election_failed")]
    assert events[-1]["event"] == "leader_lost" and events[-1]["log_level"] == "warning"
    failed = {e["error_type"] for e in events if e["event"] == "leader_election_failed"}
    assert failed == ({"TransportError"} if fault == "error" else {"TimeoutError"})


def test_on_stopped_leading_is_called_without_ever_leading(
        server: Server, kube_fake_clock: FakeClock) -> None:
    server.put(record("other"))
    me = Candidate(server, "me", kube_fake_clock)
    with running(me):
        advance_until(kube_fake_clock, lambda: me.new_leaders == ["other"])
    assert me.stopped == 1 and not me.started.is_set()


def test_errors_are_logged_and_retried(server: Server, kube_fake_clock: FakeClock) -> None:
    server.fail = TransportError("refused")
    me = Candidate(server, "me", kube_fake_clock)
    with capture_logs() as logs, running(me):
        advance_until(kube_fake_clock, lambda: sum(
            e["event"] == "leader_election_failed" for e in logs) >= 3)
        server.fail = None
        advance_until(kube_fake_clock, me.started.is_set)
    failed = [e for e in logs if e["event"] == "leader_election_failed"]
    assert failed[0]["error_type"] == "TransportError" and failed[0]["log_level"] == "warning"


def test_release_on_cancel_empties_the_record(server: Server, kube_fake_clock: FakeClock) -> None:
    cfg = dataclasses.replace(CFG, release_on_cancel=True)
    me = Candidate(server, "me", kube_fake_clock, cfg)
    with capture_logs() as logs, running(me):
        assert me.started.wait(5)
        advance_until(kube_fake_clock, lambda: len(server.writes) >= 2)
    assert server.record is not None
    assert server.record.holder_identity == ""
    assert server.record.lease_duration_seconds == 1
    assert server.record.leader_transitions == 0
    assert "leader_released" in [e["event"] for e in logs]
    # A standby takes the released lease at its next attempt.
    standby = Candidate(server, "standby", kube_fake_clock)
    with running(standby):
        taken = advance_until(kube_fake_clock, standby.started.is_set)
        assert taken <= MAX_ACQUIRE_GAP
    assert server.record.holder_identity == "standby"
    assert server.record.leader_transitions == 1


def test_no_release_without_the_option(server: Server, kube_fake_clock: FakeClock) -> None:
    me = Candidate(server, "me", kube_fake_clock)
    with running(me):
        assert me.started.wait(5)
    assert server.record is not None and server.record.holder_identity == "me"


def test_run_twice_at_once_is_refused(server: Server, kube_fake_clock: FakeClock) -> None:
    me = Candidate(server, "me", kube_fake_clock)
    with running(me) as stop:
        assert me.started.wait(5)
        with pytest.raises(RuntimeError, match="already running"):
            me.elector.run(stop)


def test_empty_identity_is_refused(server: Server) -> None:
    with pytest.raises(ValueError, match="identity"):
        LeaderElector(FakeLock(server, ""), CFG, on_started_leading=lambda s: None,
                      on_stopped_leading=lambda: None)


def test_logger_is_bound_per_instance(server: Server, kube_fake_clock: FakeClock) -> None:
    me = Candidate(server, "me", kube_fake_clock)
    with capture_logs() as logs, running(me):
        assert me.started.wait(5)
    acquired = next(e for e in logs if e["event"] == "leader_acquired")
    assert acquired["identity"] == "me" and acquired["election"] == "t"
    assert acquired["lock"] == "ns/lock" and acquired["log_level"] == "info"
