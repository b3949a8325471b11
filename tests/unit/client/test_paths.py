"""Every URL the library builds is validated before anything is sent (issue 13, item 1)."""

from __future__ import annotations

import pytest
from kubernetes.client import Configuration

from pycontroller import Client
from pycontroller._util._paths import (
    check_path_segment,
    check_request_path,
    path_segment_problems,
)
from pycontroller.client import resource_for
from pycontroller.leaderelection import LeaseLock


def test_segment_rules_match_client_go() -> None:
    assert path_segment_problems("ok-name.1") == []
    assert path_segment_problems("...") == []
    assert path_segment_problems(".") == ["may not be '.'"]
    assert path_segment_problems("..") == ["may not be '..'"]
    assert path_segment_problems("a/%") == ["may not contain '/'", "may not contain '%'"]
    with pytest.raises(ValueError, match="name must not be empty"):
        check_path_segment("name", "")


@pytest.mark.parametrize("path", [
    "/api/v1/namespaces/ns/configmaps/.", "/api/v1/namespaces/ns/configmaps/..",
    "/api/v1/namespaces/../configmaps", "/api/v1/./pods", "/api/v1/%2e%2e/pods",
    "/api/v1/.%2E/pods", "@evil.example/api", "api/v1/pods", "//evil.example/api",
    "/api/v1/namespaces/ns/configmaps/..?watch=true",
])
def test_request_paths_with_dot_segments_or_no_leading_slash_are_refused(path: str) -> None:
    with pytest.raises(ValueError):
        check_request_path(path)


def test_query_may_contain_dots() -> None:
    path = "/api/v1/pods?labelSelector=a%3D..&fieldSelector=metadata.name%3D."
    assert check_request_path(path) == path


@pytest.fixture
def offline_client() -> Client:
    # Port 9 (discard) on loopback: were anything sent, it would fail with TransportError.
    return Client(Configuration(host="http://127.0.0.1:9"), request_timeout=1)


def test_client_refuses_before_sending(offline_client: Client) -> None:
    for call in (
        lambda: offline_client.request("GET", "/api/v1/namespaces/.."),
        lambda: offline_client.request("GET", "@127.0.0.2/api"),
        lambda: resource_for(offline_client, "a/b/v1", "Widget"),
        lambda: resource_for(offline_client, "example.com/..", "Widget"),
    ):
        with pytest.raises(ValueError):
            call()


def test_lease_lock_validates_its_segments(offline_client: Client) -> None:
    with pytest.raises(ValueError, match="invalid Lease name"):
        LeaseLock(offline_client, "ns", "..", "me")
    with pytest.raises(ValueError, match="invalid Lease namespace"):
        LeaseLock(offline_client, "a/b", "lease", "me")


def test_list_watch_checks_its_namespace_up_front(offline_client: Client) -> None:
    from pycontroller import CONFIGMAPS, NODES, ListWatch

    assert ListWatch(offline_client, CONFIGMAPS, "ns").namespace == "ns"
    assert ListWatch(offline_client, CONFIGMAPS, None).namespace is None
    with pytest.raises(ValueError, match="invalid namespace"):
        ListWatch(offline_client, CONFIGMAPS, "..")
    with pytest.raises(ValueError, match="cluster-scoped"):
        ListWatch(offline_client, NODES, "ns")
