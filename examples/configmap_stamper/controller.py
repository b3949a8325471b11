"""Stamp every ConfigMap labelled ``stamp=true`` with a hash of its data.

A level-triggered reconcile loop: it reads the cached object, computes the desired
annotation and patches only when it differs — so it converges however many events it got.
Declarations filter the events (a relabel or a resync does not reconcile), and each stamp
is reported as a Kubernetes Event.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pycontroller import (
    CONFIGMAPS,
    Controller,
    Predicate,
    Requeue,
    annotations_changed,
    or_,
    split_meta_namespace_key,
)
from pycontroller.errors import NotFoundError

ANNOTATION = "pycontroller.dev/data-hash"


def data_changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """An update predicate: the ConfigMap's ``data`` changed."""
    return old.get("data") != new.get("data")


def digest_of(cm: Mapping[str, Any]) -> str:
    """The stamp: a short hash of ``data``."""
    return hashlib.sha256(
        json.dumps(cm.get("data") or {}, sort_keys=True).encode()).hexdigest()[:16]


class ConfigMapStamper(Controller):
    """Keeps ``pycontroller.dev/data-hash`` equal to the hash of ``data``."""

    resource = CONFIGMAPS
    label_selector = "stamp=true"
    # Reconcile on creation, deletion, and updates that change data or annotations (someone
    # may edit the stamp); relabels and periodic resyncs are filtered out.
    predicates = (or_(Predicate(update=data_changed), annotations_changed),)
    workers = 2

    def reconcile(self, key: str) -> Requeue | None:
        cm = self.lister.get_by_key(key)
        if cm is None:
            return None  # deleted: nothing to clean up
        digest = digest_of(cm)
        annotations = cm["metadata"].get("annotations") or {}
        if annotations.get(ANNOTATION) == digest:
            return None  # already right: no write
        namespace, name = split_meta_namespace_key(key)
        try:
            self.client.patch(CONFIGMAPS, name,
                              {"metadata": {"annotations": {ANNOTATION: digest}}}, namespace)
        except NotFoundError:
            return None  # deleted meanwhile
        self.log.info("configmap_stamped", hash=digest)  # the key is bound already
        self.events.normal(cm, "Stamped", f"data hash {digest}")
        return None
