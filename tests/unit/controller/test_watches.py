"""Owner mapping and the event sources of declared watches (pure logic)."""

from __future__ import annotations

from typing import Any

from pycontroller import CONFIGMAPS, DEPLOYMENTS, NAMESPACES, Resource, generation_changed
from pycontroller.cache import DeletedFinalStateUnknown, ObjectKey
from pycontroller.controller._watches import EventSource, owner_key, owner_keys

WEBSITES = Resource("example.com", "v1", "websites", "Website")
CLUSTERSITES = Resource("example.com", "v1", "clustersites", "ClusterSite", namespaced=False)


def child(*refs: dict[str, Any], namespace: str = "ns", gen: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": "c", "namespace": namespace, "generation": gen,
                         "ownerReferences": list(refs)}}


def ref(kind: str = "Website", name: str = "site", api_version: str = "example.com/v1",
        controller: bool = True) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": "u",
            "controller": controller}


def test_owner_key_follows_the_controller_reference_of_the_primary_kind() -> None:
    assert owner_key(WEBSITES, child(ref())) == "ns/site"
    assert owner_key(WEBSITES, child(ref(api_version="example.com/v2"))) == "ns/site"
    assert owner_key(WEBSITES, child(ref(controller=False))) is None
    assert owner_key(WEBSITES, child(ref(kind="Other"))) is None
    assert owner_key(WEBSITES, child(ref(api_version="other.com/v1"))) is None
    assert owner_key(WEBSITES, child(ref(controller=False, name="x"), ref(name="y"))) == "ns/y"
    assert owner_key(WEBSITES, child()) is None


def test_cluster_scoped_owner_of_namespaced_child() -> None:
    assert owner_key(CLUSTERSITES, child(ref(kind="ClusterSite"))) == "site"
    assert owner_key(NAMESPACES, child(ref(kind="Namespace", api_version="v1"))) == "site"


def test_owned_update_enqueues_old_and_new_owner() -> None:
    keys: list[str] = []
    source = EventSource(resource=DEPLOYMENTS, keys=owner_keys(WEBSITES), predicates=(),
                         enqueue=keys.append)
    source.on_update(child(ref(name="old")), child(ref(name="new")))
    assert keys == ["ns/old", "ns/new"]
    keys.clear()
    source.on_update(child(ref(name="same")), child(ref(name="same")))
    assert keys == ["ns/same"]  # once per event, not per object


def test_predicates_and_tombstones_of_a_source() -> None:
    keys: list[str] = []
    observed: list[tuple[str, bool]] = []
    source = EventSource(resource=CONFIGMAPS, keys=lambda o: ["ns/x", "ns/y"],
                         predicates=(generation_changed,), enqueue=keys.append,
                         observe=lambda res, o, deleted: observed.append(
                             (o["metadata"]["name"], deleted)))
    source.on_update(child(gen=1), child(gen=1))
    assert keys == [] and observed == [("c", False)]  # observed before the predicates
    source.on_add(child(), False)
    assert keys == ["ns/x", "ns/y"]
    keys.clear()
    source.on_delete(DeletedFinalStateUnknown(ObjectKey("ns/c"), child()))
    assert keys == ["ns/x", "ns/y"] and observed[-1] == ("c", True)
    keys.clear()
    source.on_delete(DeletedFinalStateUnknown(ObjectKey("ns/c"), None))
    assert keys == []  # no final state to map


def test_owns_entries_take_predicates_and_methods_bind() -> None:
    from pycontroller import SECRETS, Controller, Owns, Watch, where

    class Parent(Controller):
        resource = WEBSITES
        owns = (DEPLOYMENTS, Owns(SECRETS, predicates=(where(lambda o: False),)))

        def mapped(self, obj: Any) -> list[str]:
            return [f"{self.name}/{obj['metadata']['name']}"]

        watches = (Watch(CONFIGMAPS, map_to=mapped),)

    deploys, secrets, configmaps = Parent()._sources()
    assert (deploys.resource, secrets.resource) == (DEPLOYMENTS, SECRETS)
    assert deploys.predicates == () and not secrets.predicates[0].create(child())
    assert list(secrets.keys(child(ref()))) == [
        "ns/site"]
    assert list(configmaps.keys(child())) == ["parent/c"]  # bound to the instance


def test_a_mapping_that_returns_one_string_is_an_error_not_one_key_per_character() -> None:
    import pytest

    keys: list[str] = []
    for wrong in ("ns/x", b"ns/x", None):
        source = EventSource(resource=CONFIGMAPS, keys=lambda o, w=wrong: w,  # type: ignore[misc]
                             predicates=(), enqueue=keys.append)
        with pytest.raises(TypeError, match="map_to of v1/configmaps returned"):
            source.on_add(child(), False)
    assert keys == []


def test_keys_that_are_not_object_keys_are_logged_and_dropped() -> None:
    from structlog.testing import capture_logs

    keys: list[str] = []
    bad: list[Any] = [("ns", "x"), "ns/x/y", "ns/", "", "/x", 7]
    source = EventSource(resource=CONFIGMAPS, keys=lambda o: [*bad, "ns/ok", "cluster-ok"],
                         predicates=(), enqueue=keys.append, name="ctl")
    with capture_logs() as logs:
        source.on_add(child(), False)
    assert keys == ["ns/ok", "cluster-ok"]
    dropped = [e for e in logs if e["event"] == "watch_key_invalid"]
    assert len(dropped) == len(bad) - 1  # "" was always skipped silently
    assert all(e["log_level"] == "error" and e["controller"] == "ctl" for e in dropped)


def test_an_unhashable_key_is_dropped_too() -> None:
    keys: list[str] = []
    mixed: list[Any] = [["ns", "x"], "ns/ok"]
    source = EventSource(resource=CONFIGMAPS, keys=lambda o: mixed, predicates=(),
                         enqueue=keys.append)
    source.on_add(child(), False)
    assert keys == ["ns/ok"]
