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
    assert PODS.path("ns", "a b:c@d") == "/api/v1/namespaces/ns/pods/a%20b%3Ac%40d"
    assert PODS.path("ns", "...") == "/api/v1/namespaces/ns/pods/..."


BAD_SEGMENTS = [".", "..", "a/b", "../secrets", "a%2e", "%2e%2e", "/"]


@pytest.mark.parametrize("bad", BAD_SEGMENTS)
def test_path_refuses_segments_that_escape(bad: str) -> None:
    # ≙ client-go's IsValidPathSegmentName: "." and ".." are removed by the HTTP layer, so
    # a name of ".." would reach the namespace itself and "." the whole collection.
    with pytest.raises(ValueError, match="invalid name"):
        PODS.path("ns", bad)
    with pytest.raises(ValueError, match="invalid namespace"):
        PODS.path(bad)
    with pytest.raises(ValueError, match="invalid namespace"):
        PODS.path(bad, "p")
    with pytest.raises(ValueError, match="invalid subresource"):
        PODS.path("ns", "p", bad)
    with pytest.raises(ValueError, match="invalid name"):
        NODES.path(name=bad)


def test_subresource_needs_a_name() -> None:
    with pytest.raises(ValueError, match="needs a name"):
        PODS.path("ns", None, "status")


@pytest.mark.parametrize("bad", BAD_SEGMENTS)
def test_resource_refuses_bad_group_version_plural(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid group"):
        Resource(bad, "v1", "widgets", "Widget")
    with pytest.raises(ValueError, match="invalid version"):
        Resource("example.com", bad, "widgets", "Widget")
    with pytest.raises(ValueError, match="invalid resource"):
        Resource("example.com", "v1", bad, "Widget")


def test_query_drops_unset_and_lowercases_bools() -> None:
    assert _query({"watch": True, "limit": 500, "continue": None, "labelSelector": ""}) == (
        "?watch=true&limit=500")
    assert _query({}) == ""
