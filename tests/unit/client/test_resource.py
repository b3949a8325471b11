from __future__ import annotations

import pytest

from pycontroller.client import DEPLOYMENTS, NODES, PODS, Resource
from pycontroller.client._kube import _query


def test_paths() -> None:
    assert PODS.path() == "/api/v1/pods"
    assert PODS.path("ns", "p") == "/api/v1/namespaces/ns/pods/p"
    assert PODS.path("ns", "p", "status") == "/api/v1/namespaces/ns/pods/p/status"
    assert DEPLOYMENTS.path("a") == "/apis/apps/v1/namespaces/a/deployments"
    assert NODES.path(name="n1") == "/api/v1/nodes/n1"
    assert str(DEPLOYMENTS) == "apps/v1/deployments"
    assert Resource("example.com", "v1", "widgets", "Widget").api_version == "example.com/v1"


def test_path_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        NODES.path("ns")
    with pytest.raises(ValueError):
        PODS.path("")
    with pytest.raises(ValueError):
        PODS.path("ns", "")


def test_names_are_quoted() -> None:
    assert PODS.path("ns", "a/b") == "/api/v1/namespaces/ns/pods/a%2Fb"


def test_query_drops_unset_and_lowercases_bools() -> None:
    assert _query({"watch": True, "limit": 500, "continue": None, "labelSelector": ""}) == (
        "?watch=true&limit=500")
    assert _query({}) == ""
