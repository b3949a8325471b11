"""Install CustomResourceDefinitions and wait until they are served (≙ envtest's CRDs).

Like envtest's ``CRDDirectoryPaths``: a directory contributes its ``.yaml``/``.yml``/
``.json`` files (not recursively), a file may hold several YAML documents, and documents
that are not CRDs are skipped.
"""

from __future__ import annotations

import copy
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pycontroller.envtest._http import Response
from pycontroller.errors import ControlPlaneError

CRDSource = str | os.PathLike[str] | Iterable[Mapping[str, Any]]
Requester = Callable[..., Response]

_BASE = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
_SUFFIXES = (".yaml", ".yml", ".json")
# A CRD's name is "<plural>.<group>": a DNS subdomain. Checked before it enters a URL.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SEGMENT = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")


def _is_crd(doc: Any) -> bool:
    return (isinstance(doc, Mapping) and doc.get("kind") == "CustomResourceDefinition"
            and str(doc.get("apiVersion", "")).startswith("apiextensions.k8s.io/"))


def _read_file(path: Path) -> list[dict[str, Any]]:
    import yaml  # noqa: PLC0415 - optional dependency (the envtest extra), JSON is YAML

    with path.open(encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if _is_crd(doc)]


def load_crds(source: CRDSource) -> list[dict[str, Any]]:
    """The CRD manifests in ``source`` (a file, a directory, or manifests), copied.

    Raises:
        ControlPlaneError: the path does not exist, or ``source`` holds no CRD.
    """
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.suffix in _SUFFIXES and p.is_file())
        elif path.is_file():
            files = [path]
        else:
            raise ControlPlaneError(f"no CRD file or directory at {path}")
        crds = [crd for file in files for crd in _read_file(file)]
    else:
        crds = [copy.deepcopy(dict(doc)) for doc in source if _is_crd(doc)]
    if not crds:
        raise ControlPlaneError(f"no CustomResourceDefinition found in {source!r}")
    for crd in crds:
        name = str((crd.get("metadata") or {}).get("name", ""))
        if not _DNS_SUBDOMAIN.match(name) or len(name) > 253:
            raise ControlPlaneError(f"invalid CRD name {name!r}")
    return crds


def _apply(request: Requester, crd: dict[str, Any]) -> None:
    name = crd["metadata"]["name"]
    resp = request("POST", _BASE, crd)
    if resp.status == 409:  # already there: replace it with this definition
        current = request("GET", f"{_BASE}/{name}")
        if current.status != 200:
            raise ControlPlaneError(f"reading CRD {name}: {current.status} {current.text}")
        update = copy.deepcopy(crd)
        update["metadata"]["resourceVersion"] = current.body["metadata"]["resourceVersion"]
        resp = request("PUT", f"{_BASE}/{name}", update)
    if resp.status not in (200, 201):
        raise ControlPlaneError(f"installing CRD {name}: {resp.status} {resp.text}")


def _established(request: Requester, name: str) -> bool:
    resp = request("GET", f"{_BASE}/{name}")
    conditions = (resp.body or {}).get("status", {}).get("conditions") or [] \
        if resp.status == 200 else []
    state = {c.get("type"): c.get("status") for c in conditions}
    return state.get("Established") == "True" and state.get("NamesAccepted") == "True"


def _discoverable(request: Requester, crd: Mapping[str, Any]) -> bool:
    spec = crd["spec"]
    group, plural = spec["group"], spec["names"]["plural"]
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        if not (_SEGMENT.match(group) and _SEGMENT.match(str(version["name"]))):
            raise ControlPlaneError(f"invalid group/version {group}/{version['name']}")
        resp = request("GET", f"/apis/{group}/{version['name']}")
        names = {r.get("name") for r in (resp.body or {}).get("resources") or []} \
            if resp.status == 200 else set()
        if plural not in names:
            return False
    return True


def install_crds(request: Requester, source: CRDSource, timeout: float) -> list[dict[str, Any]]:
    """Create or replace every CRD in ``source``; wait until each is established and served.

    Returns the manifests installed. Raises ControlPlaneError on a refused CRD or timeout.
    """
    crds = load_crds(source)
    for crd in crds:
        _apply(request, crd)
    deadline = time.monotonic() + timeout
    pending = list(crds)
    delay = 0.05
    while pending:
        pending = [crd for crd in pending
                   if not (_established(request, crd["metadata"]["name"])
                           and _discoverable(request, crd))]
        if not pending:
            break
        if time.monotonic() > deadline:
            names = ", ".join(c["metadata"]["name"] for c in pending)
            raise ControlPlaneError(f"CRDs not established and discoverable within "
                                    f"{timeout:.0f}s: {names}")
        time.sleep(delay)  # the apiserver offers no event for discovery; poll with backoff
        delay = min(delay * 2, 0.5)
    return crds
