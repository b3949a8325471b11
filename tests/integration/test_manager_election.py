"""Two Manager replicas on one Lease: only the leader reconciles; the standby takes over."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pycontroller import (
    CONFIGMAPS,
    LEASES,
    Client,
    Controller,
    LeaderElectionConfig,
    Manager,
    Requeue,
    Resource,
    Watch,
)
from pycontroller._util._wait import wait_for
from pycontroller.errors import NotFoundError

pytestmark = pytest.mark.integration
FAST = LeaderElectionConfig(lease_duration=3.0, renew_deadline=2.0, retry_period=0.5)


class Counting(Controller):
    resource = CONFIGMAPS

    def __init__(self, namespace: str) -> None:
        super().__init__(name="counting")
        self.namespace = namespace
        self.keys: list[str] = []

    def reconcile(self, key: str) -> Requeue | None:
        self.keys.append(key)
        return None


class Replica:
    def __init__(self, client: Client, namespace: str, identity: str, lease: str,
                 *, controller: Counting | None = None, grace_period: float = 30.0,
                 election: LeaderElectionConfig = FAST) -> None:
        self.controller = controller or Counting(namespace)
        self.registry = CollectorRegistry()
        self.manager = Manager(client, registry=self.registry, handle_signals=False,
                               grace_period=grace_period,
                               metrics_bind_address=None, health_probe_bind_address=None,
                               leader_election=election, leader_election_id=lease,
                               leader_election_namespace=namespace, identity=identity)
        self.manager.add(self.controller)
        self.stop = threading.Event()
        self.code: list[int] = []
        self.thread = threading.Thread(target=lambda: self.code.append(self.manager.run(self.stop)),
                                       name=f"pycontroller-test-{identity}")
        self.thread.start()

    def halt(self) -> int:
        self.stop.set()
        self.thread.join(30)
        assert not self.thread.is_alive()
        return self.code[0]


@pytest.fixture
def replicas(kube_client: Client, kube_namespace: str) -> Iterator[list[Replica]]:
    made: list[Replica] = []
    yield made
    for replica in made:
        if replica.thread.is_alive():
            replica.halt()


def test_only_the_leader_reconciles_and_the_standby_takes_over(
    replicas: list[Replica], kube_client: Client, kube_namespace: str
) -> None:
    first = Replica(kube_client, kube_namespace, "replica-a", "counting-lease")
    replicas.append(first)
    wait_for(first.manager.elected, timeout=30, message="first leads")
    second = Replica(kube_client, kube_namespace, "replica-b", "counting-lease")
    replicas.append(second)
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "one"}}, kube_namespace)
    wait_for(lambda: f"{kube_namespace}/one" in first.controller.keys, timeout=15)
    # A synced standby is ready (a rolling update needs the new Pod Ready before the old
    # leader goes), but does not work.
    wait_for(lambda: second.manager.ready()[0], timeout=30, message="standby synced")
    assert second.manager.ready() == (True, "ok (standby: waiting for leadership)")
    assert not second.manager.elected()
    assert second.controller.keys == []  # caches are warm, but it does not work
    status = {"name": "counting-lease"}
    assert first.registry.get_sample_value("leader_election_master_status", status) == 1
    assert second.registry.get_sample_value("leader_election_master_status", status) == 0
    assert first.halt() == 0
    wait_for(second.manager.elected, timeout=30, message="standby takes over")
    assert second.manager.ready() == (True, "ok")
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "two"}}, kube_namespace)
    wait_for(lambda: f"{kube_namespace}/two" in second.controller.keys, timeout=15)
    lease: Any = kube_client.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{kube_namespace}/leases/counting-lease")
    assert lease["spec"]["holderIdentity"] == "replica-b"
    assert lease["spec"]["leaseTransitions"] == 1


def test_leader_election_needs_a_lease_name(kube_client: Client) -> None:
    with pytest.raises(ValueError, match="leader_election_id"):
        Manager(kube_client, leader_election=FAST, registry=CollectorRegistry())


class Blocking(Counting):
    """Reconciles one key at a time; the key ``stuck`` blocks until released."""

    workers = 1

    def __init__(self, namespace: str) -> None:
        super().__init__(namespace)
        self.entered = threading.Event()
        self.release = threading.Event()

    def reconcile(self, key: str) -> Requeue | None:
        self.keys.append(key)
        if key.endswith("/stuck"):
            self.entered.set()
            assert self.release.wait(60), "the test never released the reconcile"
        return None


def test_lost_lease_stops_handing_out_keys_and_exits_1_at_once(
    replicas: list[Replica], kube_client: Client, kube_namespace: str
) -> None:
    controller = Blocking(kube_namespace)
    leader = Replica(kube_client, kube_namespace, "replica-a", "lost-lease",
                     controller=controller, grace_period=60)
    replicas.append(leader)
    try:
        wait_for(leader.manager.elected, timeout=30, message="leads")
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "stuck"}}, kube_namespace)
        assert controller.entered.wait(15)
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "queued"}}, kube_namespace)
        wait_for(lambda: len(controller.queue) == 1, timeout=15, message="a queued key")
        # Someone else takes the Lease: our renewals conflict, so we lose it.
        lease = kube_client.get(LEASES, "lost-lease", kube_namespace)
        stolen = {**lease, "spec": {**lease["spec"], "holderIdentity": "thief"}}
        kube_client.replace(LEASES, stolen)
        stolen_at = time.monotonic()
        leader.thread.join(30)
        assert not leader.thread.is_alive(), "run() did not return after losing the lease"
        # Within the renew deadline plus slack, not after the 60 s grace period.
        assert time.monotonic() - stolen_at < FAST.renew_deadline + 8
        assert leader.code == [1]
        assert not leader.stop.is_set()  # the caller's event is never set by run()
        assert controller.queue.shutting_down()
    finally:
        controller.release.set()
    # The abandoned reconcile finishes; the queued key is never handed out.
    wait_for(lambda: not any(t.is_alive() for t in controller._threads), timeout=15,
             message="workers ended")
    assert controller.keys == [f"{kube_namespace}/stuck"]


def test_release_on_cancel_waits_for_a_reconcile_that_outlives_the_grace_period(
    replicas: list[Replica], kube_client: Client, kube_namespace: str
) -> None:
    """Released while a reconcile still ran, the Lease would let a standby start on the
    same keys at once: the release waits for the workers to end."""
    releasing = LeaderElectionConfig(lease_duration=3.0, renew_deadline=2.0,
                                     retry_period=0.5, release_on_cancel=True)
    controller = Blocking(kube_namespace)
    leader = Replica(kube_client, kube_namespace, "replica-a", "overrun-lease",
                     controller=controller, grace_period=0.5, election=releasing)
    replicas.append(leader)

    def holder() -> object:
        return kube_client.get(LEASES, "overrun-lease", kube_namespace)["spec"].get(
            "holderIdentity")

    try:
        wait_for(leader.manager.elected, timeout=30, message="leads")
        kube_client.create(CONFIGMAPS, {"metadata": {"name": "stuck"}}, kube_namespace)
        assert controller.entered.wait(15)
        assert leader.halt() == 0  # the grace period runs out; run() returns anyway
        assert any(t.is_alive() for t in controller._threads)  # the reconcile goes on
        assert holder() == "replica-a"
    finally:
        controller.release.set()
    # Once the reconcile has returned, the Lease is released as asked.
    wait_for(lambda: holder() == "", timeout=15, message="released after the workers")


class NeverSyncs(Controller):
    """Watches a resource the apiserver does not serve: its cache never syncs."""

    resource = CONFIGMAPS
    watches = (Watch(Resource("example.com", "v1", "nothings", "Nothing"),
                     map_to=lambda obj: []),)

    def reconcile(self, key: str) -> Requeue | None:
        return None


def test_stopped_before_the_caches_synced_never_takes_the_lease(
    kube_client: Client, kube_namespace: str
) -> None:
    """A replica told to stop while still syncing (a SIGTERM during start-up) must not
    stand for election on its way out: the Lease it took would make the others wait a
    whole lease duration."""
    manager = Manager(kube_client, registry=CollectorRegistry(), handle_signals=False,
                      metrics_bind_address=None, health_probe_bind_address=None,
                      namespace=kube_namespace, leader_election=FAST,
                      leader_election_id="never-synced", leader_election_namespace=kube_namespace)
    manager.add(NeverSyncs(name="never-syncs"))
    stop = threading.Event()
    code: list[int] = []
    thread = threading.Thread(target=lambda: code.append(manager.run(stop)),
                              name="pycontroller-test-never-synced")
    thread.start()
    wait_for(lambda: "not synced" in manager.ready()[1], timeout=30, message="syncing")
    stop.set()
    thread.join(30)
    assert not thread.is_alive() and code == [0]
    time.sleep(FAST.retry_period * 2)  # an elector started on the way out would have written
    with pytest.raises(NotFoundError):
        kube_client.get(LEASES, "never-synced", kube_namespace)
