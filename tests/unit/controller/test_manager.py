"""Manager.add wiring without an API server: shared informers, indexers, scope checks."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client as k8s_client
from prometheus_client import CollectorRegistry

from pycontroller import CONFIGMAPS, PODS, SECRETS, Client, Controller, Manager, Watch


def offline_client() -> Client:
    cfg = k8s_client.Configuration()
    cfg.host = "http://127.0.0.1:9"  # never contacted: nothing is started
    return Client(cfg)


def manager() -> Manager:
    return Manager(offline_client(), namespace="ns", registry=CollectorRegistry(),
                   metrics_bind_address=None, health_probe_bind_address=None,
                   handle_signals=False)


def by_node(obj: Any) -> list[str]:
    return [obj["spec"]["nodeName"]]


class PodsA(Controller):
    resource = PODS
    indexers = {PODS: {"by-node": by_node}}  # noqa: RUF012


class PodsB(Controller):
    resource = PODS
    owns = (SECRETS,)
    indexers = {PODS: {"by-node": by_node}}  # noqa: RUF012


def test_same_scope_shares_one_informer_and_its_indexes() -> None:
    mgr = manager()
    a, b = PodsA(), PodsB()
    mgr.add(a)
    mgr.add(b)
    informer = mgr.factory.informer_for(PODS)
    assert set(informer.indexer.get_indexers()) >= {"by-node"}
    # Both listers read the same cache (and the owned resource got its own informer).
    assert a.lister._indexer is b.lister._indexer is informer.indexer
    assert b.lister_for(SECRETS)._indexer is mgr.factory.informer_for(SECRETS).indexer
    with pytest.raises(LookupError, match="does not watch"):
        a.lister_for(SECRETS)
    assert mgr.ready() == (False, "caches not synced: podsa, podsb")


def test_clashing_index_functions_are_refused() -> None:
    mgr = manager()
    mgr.add(PodsA())

    class Clash(Controller):
        resource = PODS
        indexers = {PODS: {"by-node": lambda obj: []}}  # noqa: RUF012

    with pytest.raises(ValueError, match="already exists"):
        mgr.add(Clash())


def test_indexers_need_a_watched_resource_and_one_scope_per_resource() -> None:
    class Unwatched(Controller):
        resource = PODS
        indexers = {CONFIGMAPS: {"x": by_node}}  # noqa: RUF012

    with pytest.raises(ValueError, match="does not watch"):
        manager().add(Unwatched())

    class TwoScopes(Controller):
        resource = CONFIGMAPS
        label_selector = "a=b"
        watches = (Watch(CONFIGMAPS, map_to=lambda obj: []),)

    with pytest.raises(ValueError, match="twice"):
        manager().add(TwoScopes())


@pytest.mark.parametrize(("where", "value", "message"), [
    ("label_selector", "app=web,", "ends with ','"),
    ("label_selector", "app in (a,b", "not a label selector"),
    ("label_selector", "!app=web", "not a label selector"),
    ("field_selector", "metadata.name", "not a field selector"),
    ("field_selector", "=x", "not a field selector"),
    ("namespace", "a/b", "invalid namespace"),
    ("namespace", "..", "invalid namespace"),
])
def test_a_malformed_scope_is_refused_when_added_not_as_a_sync_timeout(
        where: str, value: str, message: str) -> None:
    """Each of these goes into every LIST/WATCH URL: the apiserver would refuse every
    attempt and the Manager would exit only after sync_timeout, blaming RBAC."""
    from pycontroller import Owns

    class Primary(Controller):
        resource = CONFIGMAPS

    primary = Primary()
    setattr(primary, where, value)
    mgr = manager()
    with pytest.raises(ValueError, match=message) as info:
        mgr.add(primary)
    assert "primary" in str(info.value) and "v1/configmaps" in str(info.value)

    class Child(Controller):
        resource = PODS
        owns = (Owns(SECRETS, **({where: value} if where != "field_selector" else {})),)  # type: ignore[arg-type]
        watches = (Watch(CONFIGMAPS, map_to=lambda obj: [], **{where: value}),)  # type: ignore[arg-type]

    with pytest.raises(ValueError, match=message):
        manager().add(Child())


def test_well_formed_scopes_are_accepted() -> None:
    class Scoped(Controller):
        resource = CONFIGMAPS
        namespace = "other"
        label_selector = "app=web,tier!=db,env in (a, b),!legacy,example.com/x==y,gen>3"
        field_selector = r"metadata.name=a\,b,status.phase!=Failed,"  # empty term: skipped

    manager().add(Scoped())


def test_the_managers_own_namespace_is_checked() -> None:
    with pytest.raises(ValueError, match="invalid namespace"):
        Manager(offline_client(), namespace="a/b", registry=CollectorRegistry(),
                metrics_bind_address=None, health_probe_bind_address=None,
                handle_signals=False)


def test_two_controllers_with_one_name_are_refused() -> None:
    """The name labels the queue's and the controller's metrics and is the Events'
    reporting component: two controllers under one name would report as one (and the
    second queue's depth gauge would replace the first's). ≙ controller-runtime's
    "controller names must be unique"."""
    mgr = manager()
    mgr.add(PodsA())
    with pytest.raises(ValueError, match="podsa"):
        mgr.add(PodsA())
    mgr.add(PodsA(name="podsa-2"))


def test_a_refused_controller_leaves_no_informer_behind() -> None:
    """A name that cannot report Events, or a bad finalizer, is refused before any
    informer exists: nothing half-added starts watching when the Manager runs."""
    from pycontroller import Owns

    class Named(Controller):
        resource = PODS
        owns = (Owns(SECRETS),)

    class BadFinalizer(Controller):
        resource = PODS
        finalizer = "no-domain"

    mgr = manager()
    with pytest.raises(ValueError, match="component"):
        mgr.add(Named(name="Not A Qualified Name"))
    with pytest.raises(ValueError, match="finalizer"):
        mgr.add(BadFinalizer())
    assert mgr.factory._informers == {}
