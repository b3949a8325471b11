"""The exception tree of pycontroller.

::

    Error
    ├── APIError                      the API server answered with a failure Status
    │   ├── BadRequestError           400
    │   ├── UnauthorizedError         401
    │   ├── ForbiddenError            403
    │   ├── NotFoundError             404
    │   ├── ConflictError             409 (also AlreadyExists)
    │   ├── ResourceExpiredError      410 Gone: the resourceVersion is compacted; relist
    │   ├── InvalidError              422
    │   ├── TooManyRequestsError      429 (carries retry_after)
    │   └── ServerError               5xx
    ├── TransportError                no HTTP answer: connection refused, reset, timeout
    ├── ConfigError                   no usable kubeconfig / in-cluster config
    ├── ShutDownError                 the queue or informer was shut down by its owner
    ├── CacheSyncTimeoutError         caches did not sync before the deadline
    ├── IndexNotFoundError            (also a LookupError) unknown index name
    ├── ControlPlaneError             the local control plane failed to build or start
    ├── LeaderElectionLostError       this process lost its lease
    ├── TerminalError                 raised by a reconcile: logged and counted, never retried
    └── OwnerReferenceError           (also a ValueError) an owner reference cannot be set
        ├── AlreadyOwnedError         another controller already owns the object
        └── CrossNamespaceOwnerError  owner and object scopes are incompatible

Errors from third-party libraries are translated at the ``pycontroller.client`` seam and
raised ``from`` the original; nothing above that seam sees a third-party type.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class Error(Exception):
    """Base class of every error pycontroller raises."""


class APIError(Error):
    """The API server answered with a failure ``Status``.

    Attributes:
        status: the HTTP status code.
        reason: the Status ``reason`` (``NotFound``, ``Expired``, ...), or "".
        message: the Status ``message``.
        body: the decoded Status object, when there was one.
    """

    def __init__(
        self, status: int, reason: str = "", message: str = "",
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{status} {reason}: {message}".strip())
        self.status = status
        self.reason = reason
        self.message = message
        self.body = body


class BadRequestError(APIError):
    """400 Bad Request."""


class UnauthorizedError(APIError):
    """401 Unauthorized: no or bad credentials."""


class ForbiddenError(APIError):
    """403 Forbidden: authenticated, but RBAC denies the request."""


class NotFoundError(APIError):
    """404 Not Found."""


class ConflictError(APIError):
    """409 Conflict: stale resourceVersion on update, or the object already exists."""


class ResourceExpiredError(APIError):
    """410 Gone / Expired: the requested resourceVersion is too old; relist."""


class InvalidError(APIError):
    """422 Unprocessable Entity: the object failed validation."""


class TooManyRequestsError(APIError):
    """429 Too Many Requests (API priority and fairness); wait ``retry_after`` seconds."""

    retry_after: float | None = None


class ServerError(APIError):
    """5xx: the server failed; usually worth retrying."""


class TransportError(Error):
    """The request got no HTTP answer (refused, reset, timed out, TLS failure)."""


class ConfigError(Error):
    """No usable client configuration was found or it is malformed."""


class ShutDownError(Error):
    """The queue or informer was shut down by its owner."""


class CacheSyncTimeoutError(Error):
    """Informer caches did not sync before the deadline."""


class IndexNotFoundError(Error, LookupError):
    """The named index does not exist."""


class ControlPlaneError(Error):
    """The local control plane (envtest) could not be built or started."""


class LeaderElectionLostError(Error):
    """This process lost its leader lease."""


class TerminalError(Error):
    """Raise from ``reconcile`` when retrying cannot help (≙ ``reconcile.TerminalError``).

    The worker logs it (``reconcile_terminal_error``), counts it in
    ``controller_runtime_terminal_reconcile_errors_total`` and forgets the key instead of
    retrying it; the key is reconciled again on its next event. Chain the cause with
    ``raise TerminalError("...") from exc``.
    """


class OwnerReferenceError(Error, ValueError):
    """An owner reference cannot be set on the object."""


class AlreadyOwnedError(OwnerReferenceError):
    """The object already has a controller reference to a different owner.

    Attributes:
        namespace: the object's namespace ("" when cluster-scoped).
        name: the object's name.
        owner: the existing controller ownerReference (a copy).
    """

    def __init__(self, namespace: str, name: str, owner: Mapping[str, Any]) -> None:
        super().__init__(
            f"object {namespace}/{name} is already owned by another {owner.get('kind')} "
            f"controller {owner.get('name')}")
        self.namespace = namespace
        self.name = name
        self.owner = dict(owner)


class CrossNamespaceOwnerError(OwnerReferenceError):
    """A namespaced owner in another namespace, or owning a cluster-scoped object.

    Owner references may only point to an owner in the object's own namespace or to a
    cluster-scoped owner; the garbage collector ignores anything else.
    """
