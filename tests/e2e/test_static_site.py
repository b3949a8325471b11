"""The StaticSite operator against the real apiserver, its CRD installed with
install_crds: children, adoption, generations, conditions, drift, finalizer, RBAC."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import Process, apply_manifests, event, free_port
from prometheus_client import CollectorRegistry

from examples.static_site.controller import (
    CONTENT_HASH,
    FINALIZER,
    STATICSITES,
    InvalidSpecError,
    StaticSiteController,
    check_spec,
)
from pycontroller import (
    CONFIGMAPS,
    DEPLOYMENTS,
    SERVICES,
    Client,
    EventRecorder,
    Lister,
    Manager,
    connect,
    get_condition,
)
from pycontroller.cache import ThreadSafeStore
from pycontroller.client import EVENTS_K8S_IO, SECRETS
from pycontroller.envtest import ControlPlane
from pycontroller.errors import ForbiddenError, InvalidError, NotFoundError
from pycontroller.testing import wait_for

pytestmark = pytest.mark.e2e
FOLDER = Path(__file__).resolve().parents[2] / "examples" / "static_site" / "manifests"


@pytest.fixture
def crd(kube_envtest: ControlPlane) -> None:
    kube_envtest.install_crds(FOLDER / "crd.yaml")


@pytest.fixture
def operator(crd: None, kube_manager: Callable[..., Manager]) -> StaticSiteController:
    controller = StaticSiteController()
    kube_manager(controller, registry=CollectorRegistry())
    return controller


def site(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": STATICSITES.api_version, "kind": STATICSITES.kind,
            "metadata": {"name": name},
            "spec": {"content": {"index.html": "<h1>hi</h1>"}, **spec}}


def condition(client: Client, ns: str, name: str, type_: str,
              status: str | None = None) -> dict[str, Any]:
    """The condition (empty while missing, or while its status is not ``status``)."""
    cond = get_condition(client.get(STATICSITES, name, ns), type_)
    if cond is None or status not in (None, cond["status"]):
        return {}
    return dict(cond)


def controlled_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(r["uid"] == owner["metadata"]["uid"] and r.get("controller")
               for r in obj["metadata"].get("ownerReferences") or [])


def get_or_none(client: Client, resource: Any, name: str, ns: str) -> Any:
    try:
        return client.get(resource, name, ns)
    except NotFoundError:
        return None


def events(client: Client, ns: str, reason: str) -> list[Any]:
    return [e for e in client.list_all(EVENTS_K8S_IO, ns) if e.get("reason") == reason]


def test_create_update_adopt_drift_and_delete(
    operator: StaticSiteController, kube_client: Client, kube_namespace: str,
) -> None:
    ns = kube_namespace
    # A same-named ConfigMap made by hand, before the site: the operator adopts it.
    kube_client.create(CONFIGMAPS, {"metadata": {"name": "web-content"},
                                    "data": {"old.html": "x"}}, ns)
    created = kube_client.create(STATICSITES, site("web"), ns)
    assert created["spec"]["replicas"] == 1  # the CRD's defaults
    rec = wait_for(lambda: condition(kube_client, ns, "web", "Reconciled", "True"), timeout=60,
                   message="Reconciled")
    assert rec["observedGeneration"] == 1 and rec["reason"] == "ChildrenApplied"
    obj = kube_client.get(STATICSITES, "web", ns)
    assert obj["status"]["observedGeneration"] == 1
    assert FINALIZER in obj["metadata"]["finalizers"]
    avail = condition(kube_client, ns, "web", "Available")
    assert avail["status"] == "False" and avail["reason"] == "Progressing"
    cm = kube_client.get(CONFIGMAPS, "web-content", ns)
    dep = kube_client.get(DEPLOYMENTS, "web", ns)
    svc = kube_client.get(SERVICES, "web", ns)
    for child in (cm, dep, svc):
        assert controlled_by(child, obj), child["metadata"]["name"]
    assert cm["data"]["index.html"] == "<h1>hi</h1>"  # adopted, and our key applied
    assert dep["spec"]["replicas"] == 1
    assert wait_for(lambda: events(kube_client, ns, "Applied"), timeout=30, message="Event")

    # Update: a new generation; children follow; observedGeneration moves.
    kube_client.patch(STATICSITES, "web", {"spec": {"replicas": 3, "content": {
        "about.html": "<p>about</p>"}}}, ns)
    wait_for(lambda: kube_client.get(DEPLOYMENTS, "web", ns)["spec"]["replicas"] == 3,
             timeout=60, message="replicas follow")
    wait_for(lambda: condition(kube_client, ns, "web", "Reconciled").get(
        "observedGeneration") == 2, timeout=60, message="observedGeneration 2")
    cm = kube_client.get(CONFIGMAPS, "web-content", ns)
    assert cm["data"]["about.html"] == "<p>about</p>"
    new_hash = kube_client.get(DEPLOYMENTS, "web", ns)["spec"]["template"]["metadata"][
        "annotations"][CONTENT_HASH]
    assert new_hash != dep["spec"]["template"]["metadata"]["annotations"][CONTENT_HASH]

    # The Deployment reports its Pods available (as kube-controller-manager would).
    dep = kube_client.get(DEPLOYMENTS, "web", ns)
    kube_client.patch(DEPLOYMENTS, "web", {"status": {
        "observedGeneration": dep["metadata"]["generation"], "replicas": 3,
        "readyReplicas": 3, "availableReplicas": 3}}, ns, subresource="status")
    wait_for(lambda: condition(kube_client, ns, "web", "Available", "True"), timeout=60,
             message="Available")

    # Drift: someone changes an owned field; the owned watch brings it back.
    kube_client.patch(DEPLOYMENTS, "web", {"spec": {"replicas": 7}}, ns)
    wait_for(lambda: kube_client.get(DEPLOYMENTS, "web", ns)["spec"]["replicas"] == 3,
             timeout=60, message="drift corrected")
    kube_client.delete(SERVICES, "web", ns)
    wait_for(lambda: get_or_none(kube_client, SERVICES, "web", ns), timeout=60,
             message="deleted child re-created")

    # Delete: the finalizer's teardown removes the children, then the site goes.
    kube_client.delete(STATICSITES, "web", ns)
    wait_for(lambda: get_or_none(kube_client, STATICSITES, "web", ns) is None, timeout=60,
             message="site deleted")
    for resource, name in ((CONFIGMAPS, "web-content"), (DEPLOYMENTS, "web"),
                           (SERVICES, "web")):
        assert get_or_none(kube_client, resource, name, ns) is None, name
    torn = wait_for(lambda: events(kube_client, ns, "TornDown"), timeout=30, message="Event")
    assert "Service web" in torn[0]["note"]


def test_content_too_big_for_a_configmap_is_an_invalid_spec(
    operator: StaticSiteController, kube_client: Client, kube_namespace: str,
) -> None:
    """The CRD allows 64 files of 64 KiB; a ConfigMap holds 1 MiB in all. The spec is
    wrong, not the ConfigMap someone else's: InvalidSpec, not ChildRefused."""
    ns = kube_namespace
    content = {f"page{i}.html": "x" * 65536 for i in range(17)}
    kube_client.create(STATICSITES, site("big", content=content), ns)
    cond = wait_for(lambda: condition(kube_client, ns, "big", "Reconciled"), timeout=60,
                    message="Reconciled")
    assert cond["status"] == "False" and cond["reason"] == "InvalidSpec", cond
    assert "1 MiB" in cond["message"]
    assert get_or_none(kube_client, CONFIGMAPS, "big-content", ns) is None


def test_available_never_claims_a_generation_the_deployment_has_not_observed(
    crd: None, kube_client: Client, kube_namespace: str,
) -> None:
    """Right after applying a new Pod template the cache may still show the old Deployment,
    fully rolled out (the informer lags under load): Available must come from the applied
    Deployment, not from the cache. The operator is bound to caches the test fills."""
    ns = kube_namespace
    first = kube_client.create(STATICSITES, site("web"), ns)
    op = bound_operator(kube_client, {STATICSITES: [first]})
    assert op.reconcile(f"{ns}/web") is None
    dep = kube_client.patch(DEPLOYMENTS, "web", {"status": {
        "observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
        "availableReplicas": 1}}, ns, subresource="status")
    assert dep["metadata"]["generation"] == 1
    second = kube_client.patch(STATICSITES, "web", {"spec": {"content": {"new.html": "x"}}},
                               ns)
    # The cache still holds generation 1 of the Deployment, observed and available.
    op = bound_operator(kube_client, {STATICSITES: [second], DEPLOYMENTS: [dep]})
    assert op.reconcile(f"{ns}/web") is None
    assert kube_client.get(DEPLOYMENTS, "web", ns)["metadata"]["generation"] == 2
    avail = condition(kube_client, ns, "web", "Available")
    assert avail["observedGeneration"] == 2
    assert (avail["status"], avail["reason"]) == ("False", "Progressing"), avail


def bound_operator(client: Client, objects: dict[Any, list[Any]]) -> StaticSiteController:
    """An operator bound to caches the test fills (stale on purpose)."""
    listers = {}
    for resource in (STATICSITES, CONFIGMAPS, DEPLOYMENTS, SERVICES):
        store: ThreadSafeStore[Any] = ThreadSafeStore()
        for obj in objects.get(resource, []):
            store.add(obj)
        listers[resource] = Lister(store)
    op = StaticSiteController()
    op.bind(client=client, listers=listers, events=EventRecorder(client, "staticsite"))
    return op


def test_a_child_owned_by_someone_else_is_not_taken(
    operator: StaticSiteController, kube_client: Client, kube_namespace: str,
) -> None:
    ns = kube_namespace
    other = kube_client.create(CONFIGMAPS, {"metadata": {"name": "owner"}}, ns)
    kube_client.create(SERVICES, {
        "metadata": {"name": "taken", "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": other["metadata"]["uid"], "controller": True}]},
        "spec": {"ports": [{"port": 1234}]}}, ns)
    kube_client.create(STATICSITES, site("taken"), ns)
    cond = wait_for(lambda: condition(kube_client, ns, "taken", "Reconciled"), timeout=60,
                    message="Reconciled")
    assert cond["status"] == "False" and cond["reason"] == "ChildRefused", cond
    svc = kube_client.get(SERVICES, "taken", ns)
    assert svc["spec"]["ports"][0]["port"] == 1234  # untouched
    assert wait_for(lambda: events(kube_client, ns, "ChildRefused"), timeout=30,
                    message="Warning Event")
    kube_client.delete(STATICSITES, "taken", ns)
    wait_for(lambda: get_or_none(kube_client, STATICSITES, "taken", ns) is None, timeout=60,
             message="site deleted")
    assert get_or_none(kube_client, SERVICES, "taken", ns) is not None  # not ours: kept


@pytest.mark.parametrize("name", ["my.site", "x" * 64])
def test_a_site_name_that_cannot_name_its_service_is_an_invalid_spec(
    operator: StaticSiteController, kube_client: Client, kube_namespace: str, name: str,
) -> None:
    """A valid StaticSite name (a DNS subdomain) may not name a Service (a DNS label: no
    dots, at most 63 characters; the instance label allows 63 too): reported as
    InvalidSpec, and no child is made for a site that cannot be served."""
    ns = kube_namespace
    kube_client.create(STATICSITES, site(name), ns)
    cond = wait_for(lambda: condition(kube_client, ns, name, "Reconciled"), timeout=60,
                    message="Reconciled")
    assert cond["status"] == "False" and cond["reason"] == "InvalidSpec", cond
    assert "metadata.name" in cond["message"]
    assert wait_for(lambda: events(kube_client, ns, "InvalidSpec"), timeout=30,
                    message="Warning Event")
    assert get_or_none(kube_client, CONFIGMAPS, f"{name}-content", ns) is None
    assert get_or_none(kube_client, DEPLOYMENTS, name, ns) is None


def test_the_crd_schema_refuses_bad_specs(crd: None, kube_client: Client,
                                          kube_namespace: str) -> None:
    with pytest.raises(InvalidError):
        kube_client.create(STATICSITES, site("bad", content={"../x": "y"}), kube_namespace)
    with pytest.raises(InvalidError):
        kube_client.create(STATICSITES, site("bad", replicas=99), kube_namespace)
    with pytest.raises(InvalidError):  # a ConfigMap key must not start with ".."
        kube_client.create(STATICSITES, site("bad", content={"..data": "y"}), kube_namespace)


@pytest.mark.parametrize("name", [".", "..", "..data", "a/b", "x" * 254])
def test_check_spec_refuses_what_a_configmap_key_cannot_be(name: str) -> None:
    with pytest.raises(InvalidSpecError, match="file name"):
        check_spec({"content": {name: "text"}})


def test_manifests_rbac_is_enough_and_no_more(
    crd: None, kube_client: Client, kube_envtest: ControlPlane, kube_namespace: str,
) -> None:
    apply_manifests(kube_client, FOLDER)
    kubeconfig = kube_envtest.service_account_kubeconfig("staticsite-operator",
                                                         "staticsite-operator")
    sa = connect(kubeconfig)
    with pytest.raises(ForbiddenError):
        sa.list(SECRETS, kube_namespace)
    with pytest.raises(ForbiddenError):  # its own resources: no delete
        sa.delete(STATICSITES, "anything", kube_namespace)
    proc = Process(["--kubeconfig", str(kubeconfig), "--namespace", kube_namespace,
                    "--metrics-bind-address", f"127.0.0.1:{free_port()}",
                    "--health-probe-bind-address", f"127.0.0.1:{free_port()}"],
                   module="examples.static_site")
    try:
        proc.wait_for(event("controllers_started"), timeout=90, what="start as the SA")
        kube_client.create(STATICSITES, site("sa"), kube_namespace)
        wait_for(lambda: condition(kube_client, kube_namespace, "sa", "Reconciled", "True"),
                 timeout=60, message="Reconciled as SA")
        kube_client.delete(STATICSITES, "sa", kube_namespace)
        wait_for(lambda: get_or_none(kube_client, STATICSITES, "sa", kube_namespace) is None,
                 timeout=60, message="teardown as the SA")
        assert get_or_none(kube_client, DEPLOYMENTS, "sa", kube_namespace) is None
    finally:
        assert proc.stop() == 0
    assert not [line for line in proc.lines if line.get("level") == "error"], proc.raw[-20:]
