"""The PodLogger controller: what changed on each pod, and why a pod went away."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycontroller import PODS, Controller, DeletedFinalStateUnknown

Pod = Mapping[str, Any]


def _ready(pod: Pod) -> bool:
    for cond in (pod.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


def _restarts(pod: Pod) -> dict[str, int]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    return {s["name"]: int(s.get("restartCount", 0)) for s in statuses}


def summary(pod: Pod) -> dict[str, Any]:
    """The fields pod-logger reports for a pod."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    return {
        "name": meta.get("name"), "namespace": meta.get("namespace"),
        "phase": status.get("phase", "Unknown"),
        "node": (pod.get("spec") or {}).get("nodeName"),
    }


def changes(old: Pod, new: Pod) -> dict[str, Any]:
    """What a person would want to know changed: phase, readiness, restarts, node."""
    diff: dict[str, Any] = {}
    before, after = summary(old), summary(new)
    for field in ("phase", "node"):
        if before[field] != after[field]:
            diff[field] = [before[field], after[field]]
    terminating = [bool((p.get("metadata") or {}).get("deletionTimestamp")) for p in (old, new)]
    if terminating[0] != terminating[1]:
        diff["terminating"] = terminating
    if _ready(old) != _ready(new):
        diff["ready"] = [_ready(old), _ready(new)]
    old_r, new_r = _restarts(old), _restarts(new)
    restarted = {c: n for c, n in new_r.items() if n > old_r.get(c, 0)}
    if restarted:
        diff["restarts"] = restarted
    return diff


def deletion_reason(pod: Pod) -> str:
    """Why a pod is gone, from what its last state says (the API has no such field)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    if status.get("reason") == "Evicted":
        return f"evicted: {status.get('message', 'no message')}"
    for cond in status.get("conditions") or []:
        if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
            return f"disrupted: {cond.get('reason', 'unknown')}"
    phase = status.get("phase", "Unknown")
    if phase in ("Succeeded", "Failed"):
        return f"removed after it {phase.lower()}"
    if meta.get("deletionTimestamp"):
        return f"deleted gracefully (terminating since {meta['deletionTimestamp']})"
    return "deleted immediately (never scheduled, or force-deleted)"


class PodLogger(Controller):
    """Logs every pod event; reconciles nothing (a read-only controller)."""

    resource = PODS

    def on_add(self, obj: Pod, is_in_initial_list: bool) -> None:
        self.log.info("pod_added", **summary(obj), existing=is_in_initial_list)

    def on_update(self, old: Pod, new: Pod) -> None:
        if old is new:  # a resync replays the cache; nothing changed
            return
        diff = changes(old, new)
        if diff:
            self.log.info("pod_updated", **summary(new), changed=diff)
        else:
            self.log.debug("pod_updated", **summary(new), changed={})

    def on_delete(self, obj: Pod | DeletedFinalStateUnknown[Any]) -> None:
        if isinstance(obj, DeletedFinalStateUnknown):
            namespace, _, name = obj.key.rpartition("/")
            last = obj.obj if isinstance(obj.obj, Mapping) else None
            self.log.info(
                "pod_deleted", name=name, namespace=namespace or None,
                phase=summary(last)["phase"] if last else "Unknown", tombstone=True,
                reason="deleted while the watch was down; final state unknown")
            return
        self.log.info("pod_deleted", **summary(obj), tombstone=False,
                      reason=deletion_reason(obj))
