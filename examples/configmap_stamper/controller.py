"""Stamp every ConfigMap labelled ``stamp=true`` with a hash of its data.

A level-triggered reconcile loop: it reads the cached object, computes the desired
annotation and patches only when it differs — so it converges however many events it got.
"""

from __future__ import annotations

import hashlib
import json

from pycontroller import CONFIGMAPS, Controller, Requeue, split_meta_namespace_key
from pycontroller.errors import NotFoundError

ANNOTATION = "pycontroller.dev/data-hash"


class ConfigMapStamper(Controller):
    """Keeps ``pycontroller.dev/data-hash`` equal to the hash of ``data``."""

    resource = CONFIGMAPS
    label_selector = "stamp=true"
    workers = 2

    def reconcile(self, key: str) -> Requeue | None:
        cm = self.lister.get_by_key(key)
        if cm is None:
            return None  # deleted: nothing to clean up
        digest = hashlib.sha256(
            json.dumps(cm.get("data") or {}, sort_keys=True).encode()).hexdigest()[:16]
        annotations = cm["metadata"].get("annotations") or {}
        if annotations.get(ANNOTATION) == digest:
            return None  # already right: no write
        namespace, name = split_meta_namespace_key(key)
        try:
            self.client.patch(CONFIGMAPS, name,
                              {"metadata": {"annotations": {ANNOTATION: digest}}}, namespace)
        except NotFoundError:
            return None  # deleted meanwhile
        self.log.info("configmap_stamped", key=key, hash=digest)
        return None
