"""The declared finalizer of a controller (≙ controller-runtime pkg/finalizer, kube-rs
finalizer.rs).

Data flow, inside one reconcile of a live primary object: the finalizer is missing → add
it (a merge patch with a resourceVersion precondition), then the user's ``reconcile``
runs. When ``deletionTimestamp`` is set: the user's ``cleanup(obj)`` runs; only if it
returned, the finalizer is removed (same patch shape) and ``reconcile`` is not called
(the object is about to go; its final deletion triggers one more ``reconcile`` that finds
it gone). A failing cleanup raises to the worker, which retries it with backoff while the
object stays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pycontroller._meta import add_finalizer, has_finalizer, remove_finalizer
from pycontroller.client._kube import Client
from pycontroller.client._resource import Resource
from pycontroller.errors import NotFoundError

Obj = Mapping[str, Any]


def validate_finalizer(name: str) -> None:
    """Raise ``ValueError`` unless ``name`` is a domain-prefixed qualified name."""
    add_finalizer({"metadata": {}}, name)


def _write(client: Client, resource: Resource, obj: Obj, finalizers: list[str]) -> None:
    meta = obj["metadata"]
    # The resourceVersion turns the merge patch into a compare-and-swap: a stale cached
    # list of finalizers is rejected with 409 (and retried) instead of overwriting others'.
    patch = {"metadata": {"finalizers": finalizers, "resourceVersion": meta["resourceVersion"]}}
    client.patch(resource, meta["name"], patch,
                 meta.get("namespace") if resource.namespaced else None)


def handle_finalizer(client: Client, resource: Resource, name: str, obj: Obj, *,
                     cleanup: Callable[[Obj], None], log: Any) -> bool:
    """Run the finalizer step for ``obj``; True when the reconcile must not run.

    Raises:
        Exception: whatever ``cleanup`` raised, or the API error of the patch.
    """
    # A private copy of the list: the cached object is never modified.
    mine = {"metadata": {"finalizers": list((obj.get("metadata") or {}).get("finalizers")
                                            or ())}}
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        if not has_finalizer(obj, name):
            return True  # ours is done (or was never added): nothing to do while it goes
        cleanup(obj)
        remove_finalizer(mine, name)
        try:
            _write(client, resource, obj, mine["metadata"]["finalizers"])
        except NotFoundError:
            return True
        log.info("finalizer_removed", finalizer=name)
        return True
    if add_finalizer(mine, name):
        _write(client, resource, obj, mine["metadata"]["finalizers"])
        log.info("finalizer_added", finalizer=name)
    return False
