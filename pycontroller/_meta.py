"""Plain helpers over JSON objects: owner references, finalizers and status conditions.

The functions work on decoded JSON mappings (what the client and the caches hand out) and
mutate the mapping given to them in place; they never talk to the API server. Semantics
follow controller-runtime's ``controllerutil`` (owner references, finalizers) and
apimachinery's ``meta.SetStatusCondition`` (conditions).

Thread-safety: the functions keep no state; a mapping must not be mutated by two threads
at once (and objects read from a cache must be copied before they are mutated).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, MutableMapping, MutableSequence
from datetime import UTC, datetime
from typing import Any, Literal

from pycontroller.errors import AlreadyOwnedError, CrossNamespaceOwnerError

__all__ = [
    "ConditionStatus", "add_finalizer", "controller_owner", "get_condition",
    "has_finalizer", "is_condition_true", "remove_condition", "remove_finalizer",
    "set_condition", "set_controller_reference", "set_owner_reference",
]

_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_CONDITION_REASON = re.compile(r"[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?")
_CONDITION_STATUSES = ("True", "False", "Unknown")

ConditionStatus = Literal["True", "False", "Unknown"]
"""The values a condition's ``status`` may take (a ``bool`` is accepted as True/False)."""

# -- owner references ------------------------------------------------------------------


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _group(api_version: object) -> str:
    text = str(api_version or "")
    return text.rpartition("/")[0]


def _same_object(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Same group (any version), kind and name: controller-runtime's ``referSameObject``."""
    return (_group(a.get("apiVersion")) == _group(b.get("apiVersion"))
            and a.get("kind") == b.get("kind") and a.get("name") == b.get("name"))


def _owner_ref(owner: Mapping[str, Any]) -> dict[str, Any]:
    meta = _meta(owner)
    ref = {"apiVersion": owner.get("apiVersion"), "kind": owner.get("kind"),
           "name": meta.get("name"), "uid": meta.get("uid")}
    missing = [f"{'metadata.' if k in ('name', 'uid') else ''}{k}"
               for k, v in ref.items() if not v]
    if missing:
        raise ValueError(f"owner has no {', '.join(missing)} (read it from the API server "
                         "or a cache, which set them)")
    return ref


def _validate_scope(owner: Mapping[str, Any], obj: Mapping[str, Any]) -> None:
    owner_ns = _meta(owner).get("namespace") or ""
    if not owner_ns:
        return
    obj_ns = _meta(obj).get("namespace") or ""
    if not obj_ns:
        raise CrossNamespaceOwnerError(
            "cluster-scoped resource must not have a namespace-scoped owner, owner's "
            f"namespace {owner_ns}")
    if obj_ns != owner_ns:
        raise CrossNamespaceOwnerError(
            "cross-namespace owner references are disallowed, owner's namespace "
            f"{owner_ns}, obj's namespace {obj_ns}")


def _upsert(obj: MutableMapping[str, Any], ref: dict[str, Any]) -> None:
    meta = obj.setdefault("metadata", {})
    refs: list[Any] = list(meta.get("ownerReferences") or [])
    for i, existing in enumerate(refs):
        if isinstance(existing, Mapping) and _same_object(existing, ref):
            refs[i] = ref
            break
    else:
        refs.append(ref)
    meta["ownerReferences"] = refs


def controller_owner(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    """Return the object's controller ownerReference (``controller: true``), or None.

    ≙ ``metav1.GetControllerOf``. The returned mapping is the object's own entry.
    """
    for ref in _meta(obj).get("ownerReferences") or ():
        if isinstance(ref, dict) and ref.get("controller") is True:
            return ref
    return None


def set_controller_reference(owner: Mapping[str, Any], obj: MutableMapping[str, Any], *,
                             block_owner_deletion: bool = True) -> None:
    """Make ``owner`` the controller of ``obj`` (≙ ``controllerutil.SetControllerReference``).

    Adds (or replaces, when one to the same group/kind/name exists) an ownerReference
    with ``controller: true`` and ``blockOwnerDeletion`` in ``obj.metadata``. ``owner``
    needs ``apiVersion``, ``kind``, ``metadata.name`` and ``metadata.uid``; set
    ``obj``'s namespace before calling, since scope is judged from the metadata.

    Raises:
        AlreadyOwnedError: ``obj`` has a controller reference to another object.
        CrossNamespaceOwnerError: ``owner`` is namespaced and ``obj`` is in another
            namespace or has none (cluster-scoped).
        ValueError: ``owner`` lacks apiVersion, kind, name or uid.
    """
    ref = _owner_ref(owner)
    ref["controller"] = True
    ref["blockOwnerDeletion"] = block_owner_deletion
    _validate_scope(owner, obj)
    existing = controller_owner(obj)
    if existing is not None and not _same_object(existing, ref):
        meta = _meta(obj)
        raise AlreadyOwnedError(str(meta.get("namespace") or ""), str(meta.get("name") or ""),
                                existing)
    _upsert(obj, ref)


def set_owner_reference(owner: Mapping[str, Any], obj: MutableMapping[str, Any]) -> None:
    """Add ``owner`` to ``obj``'s ownerReferences (≙ ``controllerutil.SetOwnerReference``).

    A plain, non-controller reference: garbage collection deletes ``obj`` after all its
    owners are gone. An existing reference to the same group/kind/name is replaced (which,
    as in controller-runtime, drops its ``controller`` flag).

    Raises:
        CrossNamespaceOwnerError: as for ``set_controller_reference``.
        ValueError: ``owner`` lacks apiVersion, kind, name or uid.
    """
    ref = _owner_ref(owner)
    _validate_scope(owner, obj)
    _upsert(obj, ref)


# -- finalizers ------------------------------------------------------------------------


def _validate_finalizer(name: str) -> None:
    prefix, slash, local = name.rpartition("/")
    if not slash:
        raise ValueError(f"finalizer {name!r} needs a domain prefix, e.g. example.com/{name}")
    if not (0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise ValueError(f"finalizer {name!r}: the prefix must be a DNS subdomain "
                         "(lowercase, at most 253 characters)")
    if "/" in prefix or not (0 < len(local) <= 63 and _QUALIFIED_NAME_PART.fullmatch(local)):
        raise ValueError(f"finalizer {name!r}: the name after the prefix must be at most 63 "
                         "alphanumerics, '-', '_' or '.', starting and ending alphanumeric")


def has_finalizer(obj: Mapping[str, Any], name: str) -> bool:
    """Whether ``metadata.finalizers`` contains ``name`` (≙ ``ContainsFinalizer``)."""
    return name in (_meta(obj).get("finalizers") or ())


def add_finalizer(obj: MutableMapping[str, Any], name: str) -> bool:
    """Append ``name`` to ``metadata.finalizers`` unless present; return whether it changed.

    Raises:
        ValueError: ``name`` is not a domain-prefixed qualified name (``example.com/x``),
            which the API server requires of finalizers other than its own.
    """
    _validate_finalizer(name)
    if has_finalizer(obj, name):
        return False
    meta = obj.setdefault("metadata", {})
    meta["finalizers"] = [*(meta.get("finalizers") or ()), name]
    return True


def remove_finalizer(obj: MutableMapping[str, Any], name: str) -> bool:
    """Remove every ``name`` from ``metadata.finalizers``; return whether it changed.

    Any name is accepted (so an old, unqualified finalizer can be cleaned up).
    """
    if not has_finalizer(obj, name):
        return False
    meta = obj["metadata"]
    meta["finalizers"] = [f for f in meta["finalizers"] if f != name]
    return True


# -- status conditions -----------------------------------------------------------------

Conditions = MutableSequence[dict[str, Any]]


def _conditions(target: MutableMapping[str, Any] | Conditions, *,
                create: bool) -> Conditions | None:
    if not isinstance(target, MutableMapping):
        return target
    status = target.get("status")
    if not isinstance(status, MutableMapping):
        if not create:
            return None
        status = target["status"] = {}
    conditions = status.get("conditions")
    if not isinstance(conditions, MutableSequence):
        if not create:
            return None
        conditions = status["conditions"] = []
    return conditions


def _validate_condition(type: str, status: str, reason: str, message: str,
                        observed_generation: int) -> None:
    prefix, slash, local = type.rpartition("/")
    if len(type) > 316 or not _QUALIFIED_NAME_PART.fullmatch(local) or len(local) > 316 \
            or (slash and not (len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix))):
        raise ValueError(f"condition type {type!r} must be a qualified name such as "
                         "'Ready' or 'example.com/Ready'")
    if status not in _CONDITION_STATUSES:
        raise ValueError(f"condition status must be True, False or Unknown, not {status!r}")
    if not (len(reason) <= 1024 and _CONDITION_REASON.fullmatch(reason)):
        raise ValueError(f"condition reason {reason!r} must be CamelCase: a letter, then "
                         "letters, digits, '_', ',' or ':' (at most 1024)")
    if len(message) > 32768:
        raise ValueError("condition message is longer than 32768 characters")
    if observed_generation < 0:
        raise ValueError("observed_generation must be >= 0")


def _timestamp(now: datetime | None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def get_condition(target: Mapping[str, Any] | Conditions, type: str) -> dict[str, Any] | None:
    """Return the condition of ``type`` (the stored mapping itself), or None.

    ``target`` is an object (its ``status.conditions`` is read) or a list of conditions.
    """
    if isinstance(target, Mapping):
        status = target.get("status")
        found = status.get("conditions") if isinstance(status, Mapping) else None
        conditions = found if isinstance(found, list) else []
    else:
        conditions = list(target)
    for condition in conditions:
        if isinstance(condition, dict) and condition.get("type") == type:
            return condition
    return None


def is_condition_true(target: Mapping[str, Any] | Conditions, type: str) -> bool:
    """Whether the condition of ``type`` exists with status ``True``."""
    condition = get_condition(target, type)
    return condition is not None and condition.get("status") == "True"


def set_condition(target: MutableMapping[str, Any] | Conditions, type: str,
                  status: ConditionStatus | bool, reason: str, message: str = "", *,
                  observed_generation: int | None = None,
                  now: datetime | None = None) -> bool:
    """Add or update the condition of ``type``; return whether anything changed.

    Exactly ``meta.SetStatusCondition``: a new condition gets ``lastTransitionTime =
    now``; an existing one changes ``lastTransitionTime`` only when its ``status``
    changes, and takes the new ``reason``, ``message`` and ``observedGeneration``.
    ``target`` is an object (``status.conditions`` is created when missing) or a list of
    conditions. ``observed_generation=None`` means the object's ``metadata.generation``
    when ``target`` is an object that has one, else none (0, left out of the JSON).
    ``now`` (default: the current UTC time) is stored with second precision, as
    ``metav1.Time``.

    Raises:
        ValueError: a field the API server would reject (type not a qualified name,
            status not True/False/Unknown, reason not CamelCase, message too long,
            negative generation).
    """
    status_text = ("True" if status else "False") if isinstance(status, bool) else status
    if observed_generation is None:
        generation = _meta(target).get("generation") \
            if isinstance(target, MutableMapping) else None
        observed_generation = generation if isinstance(generation, int) else 0
    _validate_condition(type, status_text, reason, message, observed_generation)
    conditions = _conditions(target, create=True)
    assert conditions is not None
    existing = get_condition(conditions, type)
    if existing is None:
        new: dict[str, Any] = {"type": type, "status": status_text}
        if observed_generation:
            new["observedGeneration"] = observed_generation
        new |= {"lastTransitionTime": _timestamp(now), "reason": reason, "message": message}
        conditions.append(new)
        return True
    changed = False
    if existing.get("status") != status_text:
        existing["status"] = status_text
        existing["lastTransitionTime"] = _timestamp(now)
        changed = True
    if existing.get("reason") != reason:
        existing["reason"] = reason
        changed = True
    if existing.get("message", "") != message:
        existing["message"] = message
        changed = True
    if (existing.get("observedGeneration") or 0) != observed_generation:
        if observed_generation:
            existing["observedGeneration"] = observed_generation
        else:
            existing.pop("observedGeneration", None)
        changed = True
    return changed


def remove_condition(target: MutableMapping[str, Any] | Conditions, type: str) -> bool:
    """Remove the condition of ``type``; return whether one was removed."""
    conditions = _conditions(target, create=False)
    if conditions is None:
        return False
    for i, condition in enumerate(conditions):
        if isinstance(condition, Mapping) and condition.get("type") == type:
            del conditions[i]
            return True
    return False
