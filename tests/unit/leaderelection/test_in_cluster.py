"""The Lease namespace defaults to the Pod's own, never to "default" (issue 13, item 8)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes.client import Configuration
from prometheus_client import CollectorRegistry

from pycontroller import Client, LeaderElectionConfig, Manager
from pycontroller.leaderelection import _in_cluster, in_cluster_namespace


def test_reads_the_service_account_namespace(tmp_path: Path) -> None:
    path = tmp_path / "namespace"
    assert in_cluster_namespace(path) is None
    path.write_text("ctrl-ns\n")
    assert in_cluster_namespace(path) == "ctrl-ns"
    path.write_text("..")
    with pytest.raises(ValueError, match="invalid namespace"):
        in_cluster_namespace(path)


def _manager(**kwargs: object) -> Manager:
    client = Client(Configuration(host="http://127.0.0.1:9"))
    return Manager(client, registry=CollectorRegistry(), handle_signals=False,
                   metrics_bind_address=None, health_probe_bind_address=None,
                   leader_election=LeaderElectionConfig(), leader_election_id="lease",
                   **kwargs)  # type: ignore[arg-type]


def test_manager_requires_a_namespace_outside_a_pod(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_in_cluster, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")
    with pytest.raises(ValueError, match="leader_election_namespace"):
        _manager()
    assert _manager(leader_election_namespace="mine")._lease == ("mine", "lease")


def test_manager_uses_the_pods_namespace(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "namespace").write_text("ctrl-ns")
    monkeypatch.setattr(_in_cluster, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "namespace")
    assert _manager()._lease == ("ctrl-ns", "lease")
    assert _manager(leader_election_namespace="other")._lease == ("other", "lease")
