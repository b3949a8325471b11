"""Discovery: find the Resource serving a kind, for CRDs and anything not built in."""

from __future__ import annotations

from pycontroller._util._paths import check_path_segment, path_segment_problems
from pycontroller.client._kube import Client
from pycontroller.client._resource import BUILTINS, Resource
from pycontroller.errors import NotFoundError

_BUILTIN_BY_KIND = {(r.api_version, r.kind): r for r in BUILTINS}


def resource_for(client: Client, api_version: str, kind: str) -> Resource:
    """Return the Resource for ``kind`` in ``api_version`` (e.g. ``"example.com/v1"``).

    Built-in kinds are answered without a request; others ask the server's discovery
    endpoint once per call (cache the result).

    Raises:
        NotFoundError: the group/version is not served, or serves no such kind.
        ValueError: the group or version is not a valid URL path segment (nothing is sent).
    """
    builtin = _BUILTIN_BY_KIND.get((api_version, kind))
    if builtin is not None:
        return builtin
    group, _, version = api_version.rpartition("/")
    if group:
        check_path_segment("group", group)
    check_path_segment("version", version)
    path = f"/apis/{group}/{version}" if group else f"/api/{version}"
    doc = client.request("GET", path)
    for entry in doc.get("resources") or []:
        name = entry.get("name")
        if entry.get("kind") == kind and isinstance(name, str) and name \
                and not path_segment_problems(name):  # "pods/status" is a subresource
            return Resource(group, version, name, kind,
                            namespaced=bool(entry.get("namespaced")))
    raise NotFoundError(404, "NotFound", f"{api_version} serves no kind {kind}")
