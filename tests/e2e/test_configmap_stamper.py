"""The reconcile-loop example, run in-process by a Manager against the control plane."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from examples.configmap_stamper.controller import ANNOTATION, ConfigMapStamper
from pycontroller import CONFIGMAPS, Client, Manager
from pycontroller.client import EVENTS_K8S_IO
from pycontroller.testing import wait_for

pytestmark = pytest.mark.e2e


@pytest.fixture
def manager(kube_manager: Callable[..., Manager]) -> Manager:
    return kube_manager(ConfigMapStamper(), health_probe_bind_address="127.0.0.1:0",
                        registry=CollectorRegistry())


def annotation(client: Client, namespace: str, name: str) -> Any:
    return (client.get(CONFIGMAPS, name, namespace)["metadata"].get("annotations") or {}).get(
        ANNOTATION)


def test_stamps_labelled_configmaps_and_follows_changes(
    manager: Manager, kube_client: Client, kube_namespace: str
) -> None:
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "a", "labels": {"stamp": "true"}},
                                    "data": {"k": "1"}}, kube_namespace)
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "ignored"}, "data": {"k": "1"}},
                       kube_namespace)
    first = wait_for(lambda: annotation(kube_client, kube_namespace, "a"), timeout=30)
    kube_client.patch(CONFIGMAPS, "a", {"data": {"k": "2"}}, kube_namespace)
    wait_for(lambda: annotation(kube_client, kube_namespace, "a") not in (None, first),
             timeout=30)
    assert annotation(kube_client, kube_namespace, "ignored") is None
    assert manager.healthy() == (True, "ok")
    stamped = wait_for(lambda: [e for e in kube_client.list_all(EVENTS_K8S_IO, kube_namespace)
                                if e.get("reason") == "Stamped"], timeout=30)
    assert stamped[0]["regarding"]["name"] == "a"
    assert stamped[0]["reportingController"] == "configmapstamper"
