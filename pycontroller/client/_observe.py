"""Write observation: what a ``Client`` reports after each successful write.

A controller (read-your-own-writes) or a test registers an observer through
``Client.with_write_observer``; the client calls it after every successful write made
through that view, on the writing thread, before the write method returns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, final

from pycontroller.client._resource import Resource

WriteVerb = Literal["create", "replace", "patch", "apply", "delete"]


@final
@dataclass(frozen=True, slots=True)
class Write:
    """One successful write, as the client reports it to write observers.

    Attributes:
        verb: ``create``, ``replace`` (PUT), ``patch``, ``apply`` (server-side apply,
            including ``apply_status``) or ``delete``.
        resource: the resource written.
        namespace: the object's namespace (``None`` for cluster-scoped resources).
        name: the object's name (for ``create`` the server's, so ``generateName`` works).
        subresource: ``"status"`` (or another subresource) or ``None``.
        obj: the decoded response body: the object as the server stored it, with its new
            ``metadata.resourceVersion``; for some deletes a ``Status`` (check ``kind``).

    Immutable; the ``obj`` mapping is the same one the write method returns, so an
    observer must not modify it.
    """

    verb: WriteVerb
    resource: Resource
    namespace: str | None
    name: str
    subresource: str | None
    obj: Any

    @property
    def resource_version(self) -> str | None:
        """``obj.metadata.resourceVersion`` when the body is an object (not a Status)."""
        if not isinstance(self.obj, dict) or self.obj.get("kind") == "Status":
            return None
        rv = (self.obj.get("metadata") or {}).get("resourceVersion")
        return str(rv) if rv else None


WriteObserver = Callable[[Write], None]
"""Called with each successful ``Write``; must be fast, thread-safe and not raise."""
