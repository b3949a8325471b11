"""Security properties against the real apiserver (issue 13)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from pycontroller import CONFIGMAPS, LEASES, NAMESPACES, SECRETS, Client, Resource
from pycontroller.client import resource_for
from pycontroller.leaderelection import LeaseLock

pytestmark = pytest.mark.integration


def _snapshot(client: Client, namespace: str) -> tuple[Any, ...]:
    ns = client.get(NAMESPACES, namespace)
    cms = sorted((o["metadata"]["name"], o["metadata"]["resourceVersion"])
                 for o in client.list_all(CONFIGMAPS, namespace))
    return (ns["metadata"]["resourceVersion"], ns["metadata"].get("labels"),
            ns["metadata"].get("deletionTimestamp"), ns["status"].get("phase"), cms)


def test_dot_segments_never_reach_the_server(kube_client: Client, kube_namespace: str) -> None:
    """Each of these used to hit another URL: the collection, the Namespace, a Secret."""
    ns = kube_namespace
    for i in range(3):
        kube_client.create(CONFIGMAPS, {"metadata": {"name": f"keep-{i}"}}, ns)
    kube_client.create(SECRETS, {"metadata": {"name": "db"}, "stringData": {"pw": "hunter2"}},
                       ns)
    before = _snapshot(kube_client, ns)

    attacks: dict[str, Callable[[], Any]] = {
        "delete name '.' (the collection)": lambda: kube_client.delete(CONFIGMAPS, ".", ns),
        "delete name '..' (the Namespace)": lambda: kube_client.delete(CONFIGMAPS, "..", ns),
        "patch name '..' (relabels the Namespace)": lambda: kube_client.patch(
            CONFIGMAPS, "..", {"metadata": {"labels": {"pwned": "1"}}}, ns),
        "list in namespace '..' (cluster-wide)": lambda: kube_client.list(CONFIGMAPS, ".."),
        "subresource '../../secrets/db'": lambda: kube_client.patch(
            CONFIGMAPS, "keep-0", {"data": {"x": "y"}}, ns, subresource="../../secrets/db"),
        "replace name '..'": lambda: kube_client.replace(
            CONFIGMAPS, {"metadata": {"name": "..", "namespace": ns}}),
        "create in namespace '..'": lambda: kube_client.create(
            CONFIGMAPS, {"metadata": {"name": "x"}}, ".."),
        "watch in namespace '..'": lambda: kube_client.watch(CONFIGMAPS, "..").close(),
        "delete Namespace '.' (every Namespace)": lambda: kube_client.delete(NAMESPACES, "."),
        "raw path ending in '.'": lambda: kube_client.request(
            "DELETE", f"/api/v1/namespaces/{ns}/configmaps/."),
        "raw path with '..'": lambda: kube_client.request(
            "GET", f"/api/v1/namespaces/{ns}/configmaps/keep-0/../../secrets/db"),
        "discovery of '../api/v1'": lambda: resource_for(kube_client, "../api/v1", "Secret"),
        "Lease name '..'": lambda: LeaseLock(kube_client, ns, "..", "me").get(),
        "Lease namespace '..'": lambda: LeaseLock(kube_client, "..", "lease", "me").get(),
    }
    reached = []
    for what, attack in attacks.items():
        try:
            attack()
        except ValueError as exc:
            assert "'.'" in str(exc) or "'..'" in str(exc) or "dot segment" in str(exc) \
                or "'/'" in str(exc), (what, exc)
        except Exception as exc:  # reached the server and failed there: still a defect
            reached.append(f"{what}: {type(exc).__name__}")
        else:
            reached.append(what)
    assert reached == []
    assert _snapshot(kube_client, ns) == before
    assert kube_client.get(SECRETS, "db", ns)["metadata"]["name"] == "db"
    assert list(kube_client.list_all(LEASES, ns)) == []
    with pytest.raises(ValueError, match="invalid resource"):
        Resource("", "v1", "..", "Nothing")
