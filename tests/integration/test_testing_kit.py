"""The public test kit against the real apiserver: kube_manager, run_manager, install_crds."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from pycontroller import CONFIGMAPS, Client, Controller, Manager, Requeue, Resource, resource_for
from pycontroller.client import CUSTOM_RESOURCE_DEFINITIONS
from pycontroller.envtest import ControlPlane
from pycontroller.errors import ControlPlaneError, NotFoundError
from pycontroller.testing import run_manager, wait_for

pytestmark = pytest.mark.integration


class Recorder(Controller):
    resource = CONFIGMAPS

    def __init__(self) -> None:
        super().__init__()
        self.keys: set[str] = set()
        self.lock = threading.Lock()

    def reconcile(self, key: str) -> Requeue | None:
        with self.lock:
            self.keys.add(key)
        return None


def test_kube_manager_runs_controllers_until_the_test_ends(
        kube_manager: Callable[..., Manager], kube_client: Client, kube_namespace: str) -> None:
    recorder = Recorder()
    manager = kube_manager(recorder, registry=CollectorRegistry())
    assert manager.ready() == (True, "ok")
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "seen"}}, kube_namespace)
    wait_for(lambda: f"{kube_namespace}/seen" in recorder.keys, 30)
    # Thread cleanup is checked by the suite's leaked-thread fixture after teardown.


def test_run_manager_stops_the_manager_on_exit(kube_client: Client, kube_namespace: str) -> None:
    manager = Manager(kube_client, namespace=kube_namespace, metrics_bind_address=None,
                      health_probe_bind_address=None, handle_signals=False,
                      registry=CollectorRegistry())
    manager.add(Recorder())
    with run_manager(manager) as running:
        assert running.ready()[0]
        names = {t.name for t in threading.enumerate()}
        assert "pycontroller-test-manager" in names
    assert "pycontroller-test-manager" not in {t.name for t in threading.enumerate()}


def test_run_manager_reports_a_manager_that_never_gets_ready(
        kube_client: Client, kube_namespace: str) -> None:
    missing = Resource("nothing.example.com", "v1", "widgets", "Widget")

    class Widgets(Recorder):
        resource = missing

    manager = Manager(kube_client, namespace=kube_namespace, metrics_bind_address=None,
                      health_probe_bind_address=None, handle_signals=False, sync_timeout=1.0,
                      registry=CollectorRegistry())
    manager.add(Widgets())
    with pytest.raises(RuntimeError, match="stopped before it was ready"), \
            run_manager(manager, ready_timeout=60):
        pytest.fail("entered a manager that cannot sync")


def crd(group: str, plural: str, kind: str) -> dict[str, Any]:
    schema = {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields":
                                  True}}
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {"group": group, "scope": "Namespaced",
                 "names": {"plural": plural, "singular": kind.lower(), "kind": kind,
                           "shortNames": [plural[:3]]},
                 "versions": [{"name": "v1", "served": True, "storage": True,
                               "schema": schema}]},
    }


def test_install_crds_from_a_directory_waits_until_served(
        kube_envtest: ControlPlane, kube_client: Client, kube_namespace: str,
        tmp_path: Path) -> None:
    import yaml

    (tmp_path / "widgets.yaml").write_text(yaml.safe_dump_all([
        crd("kit.example.com", "widgets", "Widget"),
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "skipped"}},
    ]))
    (tmp_path / "gadgets.json").write_text(
        json.dumps(crd("kit.example.com", "gadgets", "Gadget")))
    (tmp_path / "README.md").write_text("not a manifest")
    try:
        installed = kube_envtest.install_crds(tmp_path)
        assert sorted(c["metadata"]["name"] for c in installed) == [
            "gadgets.kit.example.com", "widgets.kit.example.com"]
        # No retry needed: discovery serves both kinds as soon as install_crds returns.
        widgets = resource_for(kube_client, "kit.example.com/v1", "Widget")
        gadgets = resource_for(kube_client, "kit.example.com/v1", "Gadget")
        assert (widgets.plural, widgets.namespaced) == ("widgets", True)
        kube_client.create(widgets, {"apiVersion": "kit.example.com/v1", "kind": "Widget",
                                     "metadata": {"name": "w"}, "spec": {"size": 1}},
                           kube_namespace)
        assert kube_client.get(widgets, "w", kube_namespace)["spec"] == {"size": 1}
        assert list(kube_client.list_all(gadgets, kube_namespace)) == []
        kube_client.delete(widgets, "w", kube_namespace)
        # Installing again replaces the definitions (a second version served).
        again = crd("kit.example.com", "widgets", "Widget")
        again["spec"]["versions"].append({**again["spec"]["versions"][0], "name": "v2",
                                          "storage": False})
        kube_envtest.install_crds([again])
        assert resource_for(kube_client, "kit.example.com/v2", "Widget").version == "v2"
    finally:
        for name in ("widgets.kit.example.com", "gadgets.kit.example.com"):
            with contextlib.suppress(NotFoundError):
                kube_client.delete(CUSTOM_RESOURCE_DEFINITIONS, name)


def test_install_crds_refuses_what_is_not_there(kube_envtest: ControlPlane,
                                                tmp_path: Path) -> None:
    with pytest.raises(ControlPlaneError, match="no CRD file"):
        kube_envtest.install_crds(tmp_path / "missing")
    with pytest.raises(ControlPlaneError, match="no CustomResourceDefinition"):
        kube_envtest.install_crds([{"apiVersion": "v1", "kind": "ConfigMap"}])
    bad = crd("kit.example.com", "things", "Thing")
    bad["metadata"]["name"] = "../../api/v1/namespaces"
    with pytest.raises(ControlPlaneError, match="invalid CRD name"):
        kube_envtest.install_crds([bad])
