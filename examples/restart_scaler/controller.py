"""Scale up the Deployment of a crash-looping Pod by one replica, bounded and idempotent.

Pod → ReplicaSet → Deployment is followed through *controller* ownerReferences, read from
the informer caches (pods are the primary resource; ReplicaSets and Deployments are
watched for their caches and indexes). The handled crash episodes and the time of the last
scale-up are recorded on the Deployment itself, in the same server-side apply that
changes ``spec.replicas``, so a restarted controller never scales twice for one episode.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

from pycontroller import (
    DEPLOYMENTS,
    PODS,
    Controller,
    Predicate,
    Requeue,
    Watch,
    annotations_changed,
    controller_owner,
)
from pycontroller.client import REPLICASETS
from pycontroller.errors import ConflictError, ForbiddenError, NotFoundError

PREFIX = "restart-scaler.pycontroller.dev"
MAX_REPLICAS = f"{PREFIX}/max-replicas"  # set by the user on a Deployment
HANDLED = f"{PREFIX}/handled-pods"  # written by the scaler: "<pod uid>=<restarts>,..."
LAST_SCALE_UP = f"{PREFIX}/last-scale-up"  # written by the scaler: RFC 3339, UTC
KEEP_HANDLED = 20  # episodes remembered per Deployment (the annotation stays small)
BY_REPLICASET = "by-replicaset"
BY_DEPLOYMENT = "by-deployment"

Obj = Mapping[str, Any]


def restarts(pod: Obj) -> tuple[str, int]:
    """The container with the most restarts and its count (``("", 0)`` without status)."""
    best = ("", 0)
    status = pod.get("status") or {}
    for cs in (status.get("containerStatuses") or []) + (status.get("initContainerStatuses")
                                                          or []):
        count = int(cs.get("restartCount") or 0)
        if count > best[1]:
            best = (str(cs.get("name", "")), count)
    return best


def restarts_rose(old: Obj, new: Obj) -> bool:
    """An update predicate: some container's restart count went up."""
    return restarts(new)[1] > restarts(old)[1]


def _owner_key(obj: Obj, kind: str) -> list[str]:
    ref = controller_owner(obj)
    if ref is None or ref.get("kind") != kind or not str(ref.get("apiVersion", "")).startswith(
            "apps/"):
        return []
    return [f"{obj['metadata']['namespace']}/{ref['name']}"]


def pod_replicaset(pod: Obj) -> list[str]:
    """Index: the ``namespace/name`` of the ReplicaSet controlling a Pod."""
    return _owner_key(pod, "ReplicaSet")


def replicaset_deployment(rs: Obj) -> list[str]:
    """Index: the ``namespace/name`` of the Deployment controlling a ReplicaSet."""
    return _owner_key(rs, "Deployment")


def rfc3339(ts: float) -> str:
    """Whole seconds, UTC, as Kubernetes writes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def parse_rfc3339(text: str) -> float | None:
    """The inverse of :func:`rfc3339`; None when ``text`` is not of that form."""
    try:
        return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ")))
    except (TypeError, ValueError):
        return None


def handled_pods(deployment: Obj) -> dict[str, str]:
    """The recorded episodes: pod uid → restart count when it was handled (oldest first)."""
    raw = ((deployment.get("metadata") or {}).get("annotations") or {}).get(HANDLED, "")
    entries = (e.partition("=") for e in str(raw).split(",") if e)
    return {uid: count for uid, _, count in entries}


class RestartScaler(Controller):
    """When a container of a Pod has restarted ``threshold`` times, add one replica to the
    Deployment that owns the Pod — at most once per Pod (crash episode), at most up to the
    Deployment's cap, and not again within ``cooldown`` seconds.

    ``now`` is the wall clock (seconds since the epoch): the last scale-up is recorded as
    a timestamp on the Deployment, so the cool-down holds across restarts; tests inject
    their own. Thread-safe: no state besides the configuration.
    """

    resource = PODS
    # New pods, and pods whose restart count rose; deletions need nothing.
    predicates = (Predicate(update=restarts_rose, delete=lambda obj: False),)
    indexers = MappingProxyType({PODS: {BY_REPLICASET: pod_replicaset},
                                 REPLICASETS: {BY_DEPLOYMENT: replicaset_deployment}})
    workers = 2

    def _pods_of_deployment(self, deployment: Obj) -> Iterable[Obj]:
        """The cached pods of a Deployment's ReplicaSets (through the indexes)."""
        key = f"{deployment['metadata']['namespace']}/{deployment['metadata']['name']}"
        for rs in self.lister_for(REPLICASETS).by_index(BY_DEPLOYMENT, key):
            rs_key = f"{rs['metadata']['namespace']}/{rs['metadata']['name']}"
            yield from self.lister.by_index(BY_REPLICASET, rs_key)

    def pods_of(self, deployment: Obj) -> Iterable[str]:
        """A Deployment's annotations changed (its cap, say): look at its pods again."""
        for pod in self._pods_of_deployment(deployment):
            yield f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"

    watches = (Watch(REPLICASETS, map_to=lambda obj: ()),  # for its cache and index only
               Watch(DEPLOYMENTS, map_to=pods_of, predicates=(annotations_changed,)))

    def __init__(self, *, name: str = "restart-scaler", threshold: int = 3,
                 max_replicas: int = 10, cooldown: float = 300.0,
                 now: Callable[[], float] = time.time) -> None:
        super().__init__(name=name)
        if threshold < 1 or max_replicas < 1 or cooldown < 0:
            raise ValueError("threshold and max_replicas must be >= 1, cooldown >= 0")
        self.threshold, self.max_replicas, self.cooldown = threshold, max_replicas, cooldown
        self.now = now

    def reconcile(self, key: str) -> Requeue | None:
        pod = self.lister.get_by_key(key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return None  # gone or going (a scale-down, a rollout): not an episode to act on
        container, count = restarts(pod)
        if count < self.threshold:
            return None
        deployment = self._deployment_of(pod)
        if deployment is None:
            return None
        return self._decide(pod, deployment, container, count)

    def _decide(self, pod: Obj, deployment: Obj, container: str, count: int,
                ) -> Requeue | None:
        uid = pod["metadata"]["uid"]
        handled = handled_pods(deployment)
        if uid in handled:
            self.log.debug("episode_already_handled", pod_uid=uid)
            return None
        annotations = deployment["metadata"].get("annotations") or {}
        replicas = int((deployment.get("spec") or {}).get("replicas", 1))
        why = f"pod {pod['metadata']['name']} container {container} restarted {count} times"
        if replicas == 0:
            # Scaled to zero on purpose (the usual way to stop a broken app): never undo it.
            self.log.info("deployment_scaled_to_zero", deployment=deployment["metadata"]["name"])
            return None
        cap = self._cap(deployment, annotations)
        if cap is None:
            return None
        if replicas >= cap:
            self.log.warning("scale_up_refused", deployment=deployment["metadata"]["name"],
                             replicas=replicas, max_replicas=cap, restarts=count)
            self.events.warning(deployment, "ScaleUpRefused",
                                f"{why}; already at the cap of {cap} replicas")
            return None
        now = self.now()
        last = parse_rfc3339(annotations.get(LAST_SCALE_UP, ""))
        if last is not None and last > now + self.cooldown:
            # Edited by hand, or written by a replica whose clock ran far ahead: honouring
            # it would postpone every scale-up until that date.
            self.log.warning("last_scale_up_in_future",
                             deployment=deployment["metadata"]["name"],
                             value=annotations.get(LAST_SCALE_UP, "")[:64])
            last = None
        if last is not None and (wait := last + self.cooldown - now) > 0:
            self.log.info("scale_up_cooling_down", deployment=deployment["metadata"]["name"],
                          seconds_left=round(wait, 1))
            return Requeue(after=wait)
        # Keep the episodes of pods that still exist: a still crash-looping pod pushed out
        # of the record by gone ones would count as a new episode and scale again.
        live = {p["metadata"]["uid"] for p in self._pods_of_deployment(deployment)}
        handled = {u: c for u, c in handled.items() if u in live}
        return self._scale_up(deployment, replicas=replicas, uid=uid, count=count,
                              handled=handled, why=why)

    def _cap(self, deployment: Obj, annotations: Mapping[str, str]) -> int | None:
        raw = annotations.get(MAX_REPLICAS)
        if raw is None:
            return self.max_replicas
        # isascii: str.isdigit() accepts "²", which int() refuses; the length bound keeps
        # int() under Python's digit limit (it raises on thousands of digits).
        if raw.isascii() and raw.isdigit() and len(raw) <= 6 and 1 <= int(raw) <= 100_000:
            return int(raw)
        self.log.warning("invalid_max_replicas", deployment=deployment["metadata"]["name"],
                         value=raw[:64])
        self.events.warning(deployment, "InvalidMaxReplicas",
                            f"annotation {MAX_REPLICAS} must be an integer 1-100000; "
                            "not scaling")
        return None

    def _deployment_of(self, pod: Obj) -> Obj | None:
        """Follow controller ownerReferences through the caches; None (logged) if broken."""
        ns = pod["metadata"]["namespace"]
        ref = controller_owner(pod)
        if ref is None or ref.get("kind") != "ReplicaSet":
            self.log.info("crashing_pod_without_deployment", owner=(ref or {}).get("kind"))
            return None
        rs = self.lister_for(REPLICASETS).get_by_key(f"{ns}/{ref['name']}")
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            self.log.info("replicaset_missing", replicaset=ref["name"])
            return None
        dref = controller_owner(rs)
        if dref is None or dref.get("kind") != "Deployment":
            self.log.info("crashing_pod_without_deployment", replicaset=ref["name"])
            return None
        deployment = self.lister_for(DEPLOYMENTS).get_by_key(f"{ns}/{dref['name']}")
        if deployment is None or deployment["metadata"].get("uid") != dref.get("uid"):
            self.log.info("deployment_missing", deployment=dref["name"])
            return None
        result: Obj = deployment
        return result

    def _scale_up(self, deployment: Obj, *, replicas: int, uid: str, count: int,
                  handled: dict[str, str], why: str) -> Requeue | None:
        meta = deployment["metadata"]
        record = {**handled, uid: str(count)}
        record_text = ",".join(f"{u}={c}" for u, c in list(record.items())[-KEEP_HANDLED:])
        # One apply changes the replicas and records the episode, so neither happens
        # without the other. uid + resourceVersion make it a compare-and-swap against
        # the Deployment this decision was made on: a concurrent change answers 409.
        intent = {"metadata": {"name": meta["name"], "namespace": meta["namespace"],
                               "uid": meta["uid"], "resourceVersion": meta["resourceVersion"],
                               "annotations": {HANDLED: record_text,
                                               LAST_SCALE_UP: rfc3339(self.now())}},
                  "spec": {"replicas": replicas + 1}}
        try:
            self.client.apply(DEPLOYMENTS, intent, field_manager=self.name, force=True)
        except NotFoundError:
            self.log.info("deployment_missing", deployment=meta["name"])
            return None
        except ForbiddenError as exc:
            # Without the create verb (least privilege), applying to a Deployment deleted
            # meanwhile is refused as a create: gone, as far as the scaler is concerned.
            self.log.warning("scale_up_forbidden", deployment=meta["name"],
                             error=str(exc)[:300])
            return None
        except ConflictError:
            # Changed (or deleted and re-created) since the cache showed it: decide again
            # on the newer version, with backoff.
            self.log.info("deployment_conflict", deployment=meta["name"])
            return Requeue()
        self.log.info("scaled_up", deployment=meta["name"], replicas=replicas + 1,
                      restarts=count)
        self.events.normal(deployment, "ScaledUp", f"{why}: replicas {replicas} -> "
                                                   f"{replicas + 1}")
        return None
