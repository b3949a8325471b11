"""The StaticSite operator: a CRD-first controller that owns a ConfigMap, a Deployment and
a Service per site, reports conditions with ``observedGeneration``, and tears down in
order behind a finalizer.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from pycontroller import (
    CONFIGMAPS,
    DEPLOYMENTS,
    SERVICES,
    Controller,
    Owns,
    Requeue,
    Resource,
    generation_changed,
    set_condition,
    set_controller_reference,
)
from pycontroller.errors import InvalidError, NotFoundError

STATICSITES = Resource("examples.pycontroller.dev", "v1alpha1", "staticsites", "StaticSite")
MANAGED_BY = "app.kubernetes.io/managed-by"
OPERATOR = "staticsite-operator"
INSTANCE = "app.kubernetes.io/instance"
CONTENT_HASH = "examples.pycontroller.dev/content-hash"
FINALIZER = "examples.pycontroller.dev/teardown"
DEFAULT_IMAGE = "nginxinc/nginx-unprivileged:1.27"
CONFIGMAP_MAX_BYTES = 1 << 20  # the apiserver's limit on a ConfigMap's data
_FILE = re.compile(r"[-._a-zA-Z0-9]+")
_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_CHILDREN = (Owns(CONFIGMAPS, label_selector=f"{MANAGED_BY}={OPERATOR}"),
             Owns(DEPLOYMENTS, label_selector=f"{MANAGED_BY}={OPERATOR}"),
             Owns(SERVICES, label_selector=f"{MANAGED_BY}={OPERATOR}"))

Obj = Mapping[str, Any]


class InvalidSpecError(ValueError):
    """The spec cannot be served (the CRD's schema catches most of this first)."""


def check_name(name: str) -> None:
    """The site's name becomes the Service's, the Deployment's and a label value: it must
    be a DNS label (RFC 1123: at most 63 characters, ``a-z``, ``0-9``, ``-``, no dots),
    which a StaticSite name (a DNS subdomain) need not be. Older clusters also want a
    letter first for a Service name; their apiserver says so (``ChildRefused``).

    Raises:
        InvalidSpecError: with a message for the condition.
    """
    if len(name) > 63 or not _LABEL.fullmatch(name):
        raise InvalidSpecError(
            f"metadata.name {name[:64]!r} must be a DNS label (at most 63 characters of "
            "a-z, 0-9 and '-', no dots): it names the site's Service and Deployment")


def check_spec(spec: Obj) -> None:
    """What the operator relies on, checked again (a CRD installed without validation, an
    older version of the schema).

    Raises:
        InvalidSpecError: with a message for the condition.
    """
    content = spec.get("content")
    if not isinstance(content, dict) or not content:
        raise InvalidSpecError("spec.content must map at least one file name to its text")
    for name, text in content.items():
        # A ConfigMap key: and none may start with ".." (the volume's own "..data" link).
        if not _FILE.fullmatch(name) or len(name) > 253 or name == "." or \
                name.startswith(".."):
            raise InvalidSpecError(f"spec.content: {name[:64]!r} is not a valid file name")
        if not isinstance(text, str):
            raise InvalidSpecError(f"spec.content.{name} must be text")
    size = sum(len(k.encode()) + len(v.encode()) for k, v in content.items())
    if size > CONFIGMAP_MAX_BYTES:  # the CRD allows 64 files of 64 KiB
        raise InvalidSpecError(f"spec.content holds {size} bytes; its ConfigMap takes at "
                               "most 1 MiB (file names and texts together)")
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or not 0 <= replicas <= 20:
        raise InvalidSpecError("spec.replicas must be an integer 0-20")
    image = spec.get("image", DEFAULT_IMAGE)
    if not isinstance(image, str) or not image or len(image) > 512 or any(
            c.isspace() for c in image):
        raise InvalidSpecError("spec.image must be an image reference")


def labels(site: Obj) -> dict[str, str]:
    """The labels of every child (the Owns informers select on ``managed-by``)."""
    return {MANAGED_BY: OPERATOR, INSTANCE: site["metadata"]["name"],
            "app.kubernetes.io/name": "staticsite"}


def children(site: Obj) -> list[tuple[Resource, dict[str, Any]]]:
    """The desired ConfigMap, Deployment and Service of ``site`` (intents for apply)."""
    meta, spec = site["metadata"], site["spec"]
    name, ns = meta["name"], meta["namespace"]
    content = dict(spec["content"])
    digest = hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]
    selector = {INSTANCE: name, MANAGED_BY: OPERATOR}
    cm = {"metadata": {"name": f"{name}-content", "namespace": ns, "labels": labels(site)},
          "data": content}
    deploy = {
        "metadata": {"name": name, "namespace": ns, "labels": labels(site)},
        "spec": {
            "replicas": spec.get("replicas", 1),
            "selector": {"matchLabels": selector},
            "template": {
                # A content change rolls the Pods (a mounted ConfigMap updates late).
                "metadata": {"labels": labels(site), "annotations": {CONTENT_HASH: digest}},
                "spec": {
                    "containers": [{
                        "name": "web", "image": spec.get("image", DEFAULT_IMAGE),
                        "ports": [{"name": "http", "containerPort": 8080}],
                        "volumeMounts": [{"name": "content", "readOnly": True,
                                          "mountPath": "/usr/share/nginx/html"}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}},
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "runAsNonRoot": True},
                    }],
                    "volumes": [{"name": "content",
                                 "configMap": {"name": f"{name}-content"}}],
                },
            },
        },
    }
    svc = {"metadata": {"name": name, "namespace": ns, "labels": labels(site)},
           "spec": {"selector": selector,
                    "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}
    result: list[tuple[Resource, dict[str, Any]]] = [
        (CONFIGMAPS, cm), (DEPLOYMENTS, deploy), (SERVICES, svc)]
    for _, child in result:
        set_controller_reference(site, child)
    return result


class StaticSiteController(Controller):
    """Reconciles StaticSites: children by server-side apply under the field manager
    ``staticsite-operator`` (adopting same-named children nobody else controls), status
    conditions ``Reconciled`` and ``Available`` with ``observedGeneration``, Events, and
    an ordered teardown behind the finalizer. Thread-safe: no state of its own.
    """

    resource = STATICSITES
    owns = _CHILDREN
    predicates = (generation_changed,)  # our own status writes do not come back
    finalizer = FINALIZER
    workers = 2

    def __init__(self, *, name: str = OPERATOR) -> None:
        super().__init__(name=name)

    def reconcile(self, key: str) -> Requeue | None:
        site = self.lister.get_by_key(key)
        if site is None:
            return None  # gone: the teardown ran before the finalizer was removed
        try:
            check_name(site["metadata"]["name"])
            check_spec(site.get("spec") or {})
        except InvalidSpecError as exc:
            self.log.warning("invalid_spec", error=str(exc))
            self.events.warning(site, "InvalidSpec", str(exc))
            self._status(site, reconciled=(False, "InvalidSpec", str(exc)), available=None)
            return None  # a spec change (new generation) reconciles again
        changed: list[str] = []
        applied: dict[Resource, Obj] = {}
        for resource, intent in children(site):
            name = intent["metadata"]["name"]
            before = self.lister_for(resource).get_by_key(f"{intent['metadata']['namespace']}"
                                                          f"/{name}")
            try:
                after = self.client.apply(resource, intent, field_manager=self.name,
                                          force=True)
            except InvalidError as exc:  # most often: another controller owns it
                msg = f"cannot own {resource.kind} {name}: {str(exc)[:300]}"
                self.log.warning("child_refused", kind=resource.kind, child=name)
                self.events.warning(site, "ChildRefused", msg)
                self._status(site, reconciled=(False, "ChildRefused", msg), available=None)
                return None
            if before is None or before["metadata"]["resourceVersion"] != \
                    after["metadata"]["resourceVersion"]:
                changed.append(f"{resource.kind} {name}")
            applied[resource] = after
        if changed:
            self.log.info("children_applied", changed=changed)
            self.events.normal(site, "Applied", "applied " + ", ".join(changed))
        # The Deployment as the apply returned it: the cache may still show the version
        # before a new Pod template, fully rolled out, and Available would lie.
        self._status(site, reconciled=(True, "ChildrenApplied",
                                       "ConfigMap, Deployment and Service are applied"),
                     available=self._availability(site, applied[DEPLOYMENTS]))
        return None

    @staticmethod
    def _availability(site: Obj, deploy: Obj | None) -> tuple[bool, str, str]:
        want = int(site["spec"].get("replicas", 1))
        if want == 0:
            return False, "ScaledToZero", "spec.replicas is 0"
        status = (deploy or {}).get("status") or {}
        ready = int(status.get("availableReplicas") or 0)
        current = deploy is not None and int(status.get("observedGeneration") or 0) >= int(
            deploy["metadata"].get("generation") or 0)
        if current and ready >= want:
            return True, "ReplicasAvailable", f"{ready} of {want} replicas available"
        return False, "Progressing", f"{ready} of {want} replicas available"

    def _status(self, site: Obj, *, reconciled: tuple[bool, str, str],
                available: tuple[bool, str, str] | None) -> None:
        meta = site["metadata"]
        old = site.get("status") or {}
        status: dict[str, Any] = {
            "observedGeneration": meta["generation"],
            "url": f"http://{meta['name']}.{meta['namespace']}.svc",
            "conditions": copy.deepcopy(old.get("conditions") or []),  # never the cache's
        }
        set_condition(status["conditions"], "Reconciled", reconciled[0], reconciled[1],
                      reconciled[2], observed_generation=meta["generation"])
        if available is not None:
            set_condition(status["conditions"], "Available", available[0], available[1],
                          available[2], observed_generation=meta["generation"])
        if status == {k: old.get(k) for k in status}:
            return  # nothing new: no write
        try:
            self.client.apply_status(STATICSITES, {
                "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                "status": status}, field_manager=self.name, force=True)
        except NotFoundError:
            return

    def cleanup(self, site: Obj) -> None:
        """The finalizer's step: stop serving first (the Service), then the Pods (the
        Deployment), then the content. Only children this site controls are deleted; a
        child already gone is fine. Raises (and is retried) while a deletion fails."""
        meta = site["metadata"]
        removed = []
        for resource, intent in reversed(children(site)):
            name = intent["metadata"]["name"]
            child = self.lister_for(resource).get_by_key(f"{meta['namespace']}/{name}")
            refs = (child or {}).get("metadata", {}).get("ownerReferences") or []
            if not any(r.get("uid") == meta["uid"] and r.get("controller") for r in refs):
                continue
            try:
                self.client.delete(resource, name, meta["namespace"])
                removed.append(f"{resource.kind} {name}")
            except NotFoundError:
                pass
        if removed:  # a repeated teardown (a stale cache) finds nothing left to say
            self.log.info("site_torn_down", removed=removed)
            self.events.normal(site, "TornDown", "deleted " + ", ".join(removed))
