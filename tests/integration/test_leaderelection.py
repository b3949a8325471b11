"""Lease leader election against the real kube-apiserver (checklist 68-72)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from pycontroller._util._wait import wait_for
from pycontroller.client import LEASES, Client, connect
from pycontroller.envtest import ControlPlane
from pycontroller.errors import TransportError
from pycontroller.leaderelection import (
    JITTER_FACTOR,
    LeaderElectionConfig,
    LeaderElectionRecord,
    LeaderElector,
    LeaseLock,
    parse_microtime,
)
from pycontroller.testing.pytest_plugin import ExternalCluster

pytestmark = pytest.mark.integration

LEASE = 3.0
RENEW = 2.0
RETRY = 0.5
CFG = LeaderElectionConfig(lease_duration=LEASE, renew_deadline=RENEW, retry_period=RETRY)
SLACK = 3.0  # two cores, other tests running: generous, but every wait is bounded


class CuttableLock:
    """A real LeaseLock whose requests can be made to fail: this candidate alone loses the
    apiserver (a network partition of one replica)."""

    def __init__(self, lock: LeaseLock) -> None:
        self._lock = lock
        self.cut = threading.Event()
        self.identity = lock.identity

    def _check(self) -> None:
        if self.cut.is_set():
            raise TransportError("partitioned by the test")

    def get(self) -> tuple[LeaderElectionRecord, bytes]:
        self._check()
        return self._lock.get()

    def create(self, record: LeaderElectionRecord) -> None:
        self._check()
        self._lock.create(record)

    def update(self, record: LeaderElectionRecord) -> None:
        self._check()
        self._lock.update(record)

    def describe(self) -> str:
        return self._lock.describe()


class Candidate:
    """One elector on its own client (request timeout ~ renew_deadline / 2)."""

    def __init__(self, kubeconfig: Path, namespace: str, identity: str, *,
                 config: LeaderElectionConfig = CFG) -> None:
        self.client = connect(kubeconfig, request_timeout=max(1.0, config.renew_deadline / 2))
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.stopped_at: float | None = None
        self.leading_event: threading.Event | None = None
        self.stop = threading.Event()
        self.lock = CuttableLock(LeaseLock(self.client, namespace, "leader", identity))
        self.elector = LeaderElector(
            self.lock, config,
            on_started_leading=self._started, on_stopped_leading=self._stopped)
        self.thread = threading.Thread(target=self.elector.run, args=(self.stop,),
                                       name=f"pycontroller-test-{identity}")

    def _started(self, leading: threading.Event) -> None:
        self.leading_event = leading
        self.started.set()
        leading.wait(60)

    def _stopped(self) -> None:
        self.stopped_at = time.monotonic()
        self.stopped.set()

    def start(self) -> Candidate:
        self.thread.start()
        return self

    def shut_down(self) -> None:
        self.stop.set()
        if self.thread.ident is not None:
            self.thread.join(30)
            assert not self.thread.is_alive(), "run() did not return after stop"
        self.client.close()


@contextmanager
def candidates(cluster: ControlPlane | ExternalCluster, namespace: str, *identities: str,
               config: LeaderElectionConfig = CFG) -> Iterator[list[Candidate]]:
    made = [Candidate(cluster.kubeconfig, namespace, i, config=config) for i in identities]
    try:
        yield made
    finally:
        for c in made:
            c.shut_down()


class Sampler:
    """Samples ``is_leader`` of every candidate; records any moment with two leaders."""

    def __init__(self, cands: list[Candidate]) -> None:
        self._cands = cands
        self._stop = threading.Event()
        self.overlaps = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, name="pycontroller-test-sampler")

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            if sum(c.elector.is_leader() for c in self._cands) > 1:
                self.overlaps += 1
            self.samples += 1

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def lease_spec(client: Client, namespace: str) -> dict[str, object]:
    spec: dict[str, object] = client.get(LEASES, "leader", namespace)["spec"]
    return spec


def test_first_candidate_creates_the_lease_and_renews(
    kube_control_plane: ControlPlane | ExternalCluster, kube_client: Client,
    kube_namespace: str,
) -> None:
    with candidates(kube_control_plane, kube_namespace, "a") as (a,):
        a.start()
        assert a.started.wait(10 + SLACK)
        assert a.elector.is_leader() and a.elector.get_leader() == "a"
        spec = lease_spec(kube_client, kube_namespace)
        assert spec["holderIdentity"] == "a"
        assert spec["leaseTransitions"] == 0
        assert spec["leaseDurationSeconds"] == 3
        acquired = parse_microtime(str(spec["acquireTime"]))
        # renewTime advances about every retry period (checklist 69).
        renewals = {str(spec["renewTime"])}
        deadline = time.monotonic() + 4 * RETRY + SLACK
        while len(renewals) < 4 and time.monotonic() < deadline:
            renewals.add(str(lease_spec(kube_client, kube_namespace)["renewTime"]))
            time.sleep(0.05)
        assert len(renewals) >= 4, renewals
        later = lease_spec(kube_client, kube_namespace)
        assert parse_microtime(str(later["renewTime"])) > acquired
        assert later["acquireTime"] == spec["acquireTime"]
        assert later["leaseTransitions"] == 0


def a_leads_b_watches(a: Candidate, b: Candidate) -> None:
    """Start ``a`` until it leads, then ``b`` until it has seen ``a`` as the leader."""
    a.start()
    assert a.started.wait(10 + SLACK)
    b.start()
    wait_for(lambda: b.elector.get_leader() == "a", timeout=5 + SLACK,
             message="b observes a")


def test_standby_takes_over_after_lease_duration_when_leader_stops(
    kube_control_plane: ControlPlane | ExternalCluster, kube_client: Client,
    kube_namespace: str,
) -> None:
    with candidates(kube_control_plane, kube_namespace, "a", "b") as (a, b), \
            Sampler([a, b]) as sampler:
        a_leads_b_watches(a, b)
        time.sleep(2 * LEASE)  # b must not take over from a live leader
        assert not b.started.is_set() and a.elector.is_leader()
        a.shut_down()  # no release: b waits out the lease
        stopped = time.monotonic()
        assert a.stopped.is_set() and not a.elector.is_leader()
        assert b.started.wait(LEASE + (1 + JITTER_FACTOR) * RETRY + SLACK)
        took = time.monotonic() - stopped
        # b last saw a change at most one renewal + one b poll before a stopped.
        assert took >= LEASE - RETRY - (1 + JITTER_FACTOR) * RETRY - 0.2, took
    spec = lease_spec(kube_client, kube_namespace)
    assert spec["holderIdentity"] == "b" and spec["leaseTransitions"] == 1
    assert sampler.samples > 100 and sampler.overlaps == 0


def test_release_on_cancel_hands_over_within_a_retry(
    kube_control_plane: ControlPlane | ExternalCluster, kube_client: Client,
    kube_namespace: str,
) -> None:
    releasing = LeaderElectionConfig(lease_duration=LEASE, renew_deadline=RENEW,
                                     retry_period=RETRY, release_on_cancel=True)
    with candidates(kube_control_plane, kube_namespace, "a", config=releasing) as (a,):
        a.start()
        assert a.started.wait(10 + SLACK)
        with capture_logs() as logs:
            a.shut_down()
    assert any(e["event"] == "leader_released" for e in logs)
    spec = lease_spec(kube_client, kube_namespace)
    assert spec["holderIdentity"] == "" and spec["leaseDurationSeconds"] == 1
    assert spec["leaseTransitions"] == 0

    with candidates(kube_control_plane, kube_namespace, "b", "c", config=releasing) as (b, c):
        b.start()
        assert b.started.wait(10 + SLACK)  # the released lease is free at once
        c.start()
        wait_for(lambda: c.elector.get_leader() == "b", timeout=5 + SLACK, message="c sees b")
        with Sampler([b, c]) as sampler:
            b.shut_down()
            released = time.monotonic()
            assert c.started.wait((1 + JITTER_FACTOR) * RETRY + SLACK)
            assert time.monotonic() - released < LEASE  # far sooner than a lease duration
        assert sampler.overlaps == 0
        spec = lease_spec(kube_client, kube_namespace)
        assert spec["holderIdentity"] == "c" and spec["leaseTransitions"] == 2


def test_leader_steps_down_when_the_apiserver_stalls(
    kube_envtest: ControlPlane, kube_namespace: str,
) -> None:
    with candidates(kube_envtest, kube_namespace, "a") as (a,):
        a.start()
        assert a.started.wait(10 + SLACK)
        with capture_logs() as logs:
            kube_envtest.pause()
            try:
                paused = time.monotonic()
                assert a.stopped.wait(RETRY + RENEW + SLACK), "leader did not step down"
                assert a.stopped_at is not None
                assert a.stopped_at - paused <= RETRY + RENEW + SLACK
                assert not a.elector.is_leader()
                assert a.leading_event is not None and a.leading_event.is_set()
            finally:
                kube_envtest.resume()
        kube_envtest.wait_ready(30)
    assert any(e["event"] == "leader_lost" for e in logs)


def test_user_without_rbac_never_leads(
    kube_envtest: ControlPlane, kube_namespace: str,
) -> None:
    kubeconfig = kube_envtest.add_user("no-lease-rights")
    cand = Candidate(kubeconfig, kube_namespace, "intruder")
    try:
        with capture_logs() as logs:
            cand.start()

            def forbidden() -> bool:
                return any(e["event"] == "leader_election_failed"
                           and e.get("error_type") == "ForbiddenError" for e in list(logs))

            wait_for(forbidden, timeout=5 + SLACK, message="leader_election_failed")
            assert not cand.started.is_set() and not cand.elector.is_leader()
        failed = next(e for e in logs if e["event"] == "leader_election_failed")
        assert failed["log_level"] == "warning" and "403" in failed["error"]
    finally:
        cand.shut_down()
    assert cand.stopped.is_set() and not cand.started.is_set()


def test_standby_waits_out_a_lease_deleted_by_hand(
    kube_control_plane: ControlPlane | ExternalCluster, kube_client: Client,
    kube_namespace: str,
) -> None:
    """Deleting the Lease is a change of the record, not a release: the standby waits a
    lease duration from when it noticed, because the leader it last saw may still lead (here
    it is cut off from the apiserver and leads until its renew deadline)."""
    slow = LeaderElectionConfig(lease_duration=6, renew_deadline=4, retry_period=RETRY)
    with candidates(kube_control_plane, kube_namespace, "a", "b", config=slow) as (a, b), \
            Sampler([a, b]) as sampler:
        a_leads_b_watches(a, b)
        a.lock.cut.set()
        kube_client.delete(LEASES, "leader", kube_namespace)
        deleted = time.monotonic()
        assert a.stopped.wait(4 + SLACK), "a did not step down at its renew deadline"
        assert b.started.wait(6 + (1 + JITTER_FACTOR) * RETRY + SLACK)
        # b noticed the deletion within one poll, then waited a whole lease duration.
        assert time.monotonic() - deleted >= 6 - 0.2
    assert sampler.samples > 100 and sampler.overlaps == 0
    spec = lease_spec(kube_client, kube_namespace)
    assert spec["holderIdentity"] == "b"
