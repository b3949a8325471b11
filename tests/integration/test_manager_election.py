"""Two Manager replicas on one Lease: only the leader reconciles; the standby takes over."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pycontroller import CONFIGMAPS, Client, Controller, LeaderElectionConfig, Manager, Requeue
from pycontroller._util._wait import wait_for

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
    def __init__(self, client: Client, namespace: str, identity: str, lease: str) -> None:
        self.controller = Counting(namespace)
        self.registry = CollectorRegistry()
        self.manager = Manager(client, registry=self.registry, handle_signals=False,
                               metrics_bind_address=None, health_probe_bind_address=None,
                               leader_election=FAST, leader_election_id=lease,
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
    wait_for(lambda: first.manager.ready()[0], timeout=30, message="first leads")
    second = Replica(kube_client, kube_namespace, "replica-b", "counting-lease")
    replicas.append(second)
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "one"}}, kube_namespace)
    wait_for(lambda: f"{kube_namespace}/one" in first.controller.keys, timeout=15)
    assert second.manager.ready() == (False, "waiting for leadership")
    assert second.controller.keys == []  # caches are warm, but it does not work
    status = {"name": "counting-lease"}
    assert first.registry.get_sample_value("leader_election_master_status", status) == 1
    assert second.registry.get_sample_value("leader_election_master_status", status) == 0
    assert first.halt() == 0
    wait_for(lambda: second.manager.ready()[0], timeout=30, message="standby takes over")
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "two"}}, kube_namespace)
    wait_for(lambda: f"{kube_namespace}/two" in second.controller.keys, timeout=15)
    lease: Any = kube_client.request(
        "GET", f"/apis/coordination.k8s.io/v1/namespaces/{kube_namespace}/leases/counting-lease")
    assert lease["spec"]["holderIdentity"] == "replica-b"
    assert lease["spec"]["leaseTransitions"] == 1


def test_leader_election_needs_a_lease_name(kube_client: Client) -> None:
    with pytest.raises(ValueError, match="leader_election_id"):
        Manager(kube_client, leader_election=FAST, registry=CollectorRegistry())
