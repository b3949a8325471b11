"""Discovery: find the Resource for a kind, or for a name as kubectl takes it.

Data flow: ``resource_for`` → the Client's ``_Discovery`` cache (one per Client, kept in a
weak map) → ``GET /api``, ``/apis`` (groups and their preferred versions) and one
``GET /api{,s}/<group>/<version>`` per group-version, each cached for ``_TTL`` seconds.
A name or kind not found in the cache refreshes it once before failing (≙ client-go's
deferred discovery RESTMapper: reset on a miss), so CRDs installed later are found.
"""

from __future__ import annotations

import re
import threading
import time
import weakref
from dataclasses import dataclass

from pycontroller._util._paths import check_path_segment, path_segment_problems
from pycontroller.client._kube import Client
from pycontroller.client._resource import BUILTINS, Resource
from pycontroller.errors import NotFoundError

_BUILTIN_BY_KIND = {(r.api_version, r.kind): r for r in BUILTINS}
_TTL = 600.0
# DNS-1123 subdomain (groups) and label-ish (versions): checked before they enter a URL.
_GROUP = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_VERSION = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class _Entry:
    resource: Resource
    singular: str
    short_names: tuple[str, ...]


def _split_api_version(api_version: str) -> tuple[str, str]:
    group, _, version = api_version.rpartition("/")
    if group:
        check_path_segment("group", group)
    check_path_segment("version", version)
    if not _VERSION.match(version) or (group and not _GROUP.match(group)):
        raise ValueError(f"invalid apiVersion {api_version!r}")
    return group, version


class _Discovery:
    """The discovery documents of one API server, cached. Thread-safe."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self._lock = threading.Lock()
        # group-version -> (fetched at, entries); guarded by _lock
        self._versions: dict[str, tuple[float, list[_Entry]]] = {}
        # (fetched at, [(group, preferred version)]) in server order, core first
        self._groups: tuple[float, list[tuple[str, str]]] | None = None  # guarded by _lock

    def _fetch_version(self, group: str, version: str) -> list[_Entry]:
        path = f"/apis/{group}/{version}" if group else f"/api/{version}"
        doc = self._client.request("GET", path)
        entries = []
        for item in doc.get("resources") or []:
            name = str(item.get("name", ""))
            # "pods/status" is a subresource; a name that is no valid path segment (from a
            # misbehaving server) never becomes part of a URL.
            if not name or path_segment_problems(name):
                continue
            entries.append(_Entry(
                Resource(group, version, name, str(item.get("kind", "")),
                         namespaced=bool(item.get("namespaced"))),
                singular=str(item.get("singularName") or ""),
                short_names=tuple(item.get("shortNames") or ())))
        return entries

    def version(self, group: str, version: str, *, refresh: bool = False) -> list[_Entry]:
        """The resources served in ``group/version`` (empty when it is not served)."""
        key = f"{group}/{version}"
        with self._lock:
            cached = self._versions.get(key)
        if cached is not None and not refresh and time.monotonic() - cached[0] < _TTL:
            return cached[1]
        try:
            entries = self._fetch_version(group, version)
        except NotFoundError:
            entries = []
        with self._lock:
            self._versions[key] = (time.monotonic(), entries)
        return entries

    def preferred(self, *, refresh: bool = False) -> list[tuple[str, str]]:
        """``(group, preferred version)`` of every served group, core first."""
        with self._lock:
            cached = self._groups
        if cached is not None and not refresh and time.monotonic() - cached[0] < _TTL:
            return cached[1]
        core = self._client.request("GET", "/api").get("versions") or []
        groups: list[tuple[str, str]] = [("", str(core[0]))] if core else []
        for group in self._client.request("GET", "/apis").get("groups") or []:
            preferred = (group.get("preferredVersion") or {}).get("version") or \
                ((group.get("versions") or [{}])[0]).get("version")
            if group.get("name") and preferred:
                groups.append((str(group["name"]), str(preferred)))
        with self._lock:
            self._groups = (time.monotonic(), groups)
        return groups

    def all_preferred(self, *, refresh: bool) -> list[_Entry]:
        """Every resource in the preferred version of its group, in discovery order."""
        entries: list[_Entry] = []
        for group, version in self.preferred(refresh=refresh):
            entries += self.version(group, version, refresh=refresh)
        return entries


_CACHES: weakref.WeakKeyDictionary[Client, _Discovery] = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def _discovery(client: Client) -> _Discovery:
    with _CACHES_LOCK:
        found = _CACHES.get(client)
        if found is None:
            found = _CACHES[client] = _Discovery(client)
        return found


def _match(entries: list[_Entry], name: str, group: str | None,
           version: str | None) -> Resource | None:
    candidates = [e for e in entries if (group is None or e.resource.group == group)
                  and (version is None or e.resource.version == version)]
    lowered = name.lower()
    # kubectl's order: short names expand first, then plural/singular, then kind.
    for matches in (
        lambda e: lowered in e.short_names,
        lambda e: lowered in (e.resource.plural, e.singular),
        lambda e: lowered == e.resource.kind.lower(),
    ):
        for entry in candidates:
            if matches(entry):
                return entry.resource
    return None


def _resolve_name(client: Client, name: str) -> Resource:
    """``deploy``, ``deployments``, ``Deployment``, ``deployments.apps``,
    ``deployments.v1.apps``: as kubectl resolves a resource argument."""
    discovery = _discovery(client)
    resource, _, rest = name.partition(".")
    attempts: list[tuple[str | None, str | None]] = [(None, None)] if not rest else []
    if rest:
        head, _, tail = rest.partition(".")
        if tail and _VERSION.match(head):  # resource.version.group
            attempts.append((tail, head))
        attempts.append((rest, None))  # resource.group
    for refresh in (False, True):
        for group, version in attempts:
            if group is not None and version is not None:
                if not _GROUP.match(group):
                    continue
                found = _match(discovery.version(group, version, refresh=refresh),
                               resource, group, version)
            else:
                found = _match(discovery.all_preferred(refresh=refresh), resource, group, None)
            if found is not None:
                return found
    raise NotFoundError(404, "NotFound", f"the server has no resource type {name!r}")


def resource_for(client: Client, api_version_or_name: str, kind: str | None = None) -> Resource:
    """Find a Resource through the server's discovery, cached per Client.

    ``resource_for(client, "apps/v1", "Deployment")``: the resource serving ``kind`` in
    that apiVersion (built-in kinds need no request).

    ``resource_for(client, "deploy")``: a name as kubectl takes it — a short name, plural,
    singular or kind, optionally qualified as ``plural.group`` or
    ``plural.version.group``; the group's preferred version is used unless one is given,
    and the core group wins ties, as with kubectl.

    Discovery answers are cached for 10 minutes; a miss refreshes the cache once, so
    resources installed later are found. Thread-safe.

    Raises:
        NotFoundError: nothing served matches.
        ValueError: a malformed apiVersion (nothing is sent).
    """
    if kind is None:
        return _resolve_name(client, api_version_or_name)
    builtin = _BUILTIN_BY_KIND.get((api_version_or_name, kind))
    if builtin is not None:
        return builtin
    group, version = _split_api_version(api_version_or_name)
    discovery = _discovery(client)
    for refresh in (False, True):
        for entry in discovery.version(group, version, refresh=refresh):
            if entry.resource.kind == kind:
                return entry.resource
    raise NotFoundError(404, "NotFound", f"{api_version_or_name} serves no kind {kind}")

