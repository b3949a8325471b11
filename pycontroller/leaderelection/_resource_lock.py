"""The leader election record and the Lease lock (≙ tools/leaderelection/resourcelock).

Data flow: ``LeaderElector`` → **ResourceLock** → ``Client`` → a ``coordination.k8s.io/v1``
Lease. The record is the Lease's ``spec``; the lock remembers the Lease it last read or wrote
so that ``update`` carries its ``resourceVersion`` (optimistic concurrency: a stale update is
refused with ``ConflictError``). Only the Lease lock exists, as in client-go since v0.24.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol, final

from pycontroller._util._paths import check_path_segment
from pycontroller.client._kube import Client
from pycontroller.client._resource import LEASES

_MICROTIME = "%Y-%m-%dT%H:%M:%S.%fZ"
_RECORD_FIELDS = frozenset(
    {"holderIdentity", "leaseDurationSeconds", "acquireTime", "renewTime", "leaseTransitions"})


def format_microtime(when: datetime) -> str:
    """Format ``when`` as a Kubernetes MicroTime (``2026-01-02T03:04:05.000000Z``, UTC)."""
    if when.tzinfo is None:
        raise ValueError("MicroTime needs an aware datetime")
    return when.astimezone(UTC).strftime(_MICROTIME)


def parse_microtime(text: str) -> datetime:
    """Parse a Kubernetes MicroTime or Time (RFC 3339, ``Z`` or offset) into an aware UTC time.

    Raises:
        ValueError: ``text`` is not an RFC 3339 timestamp.
    """
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return parsed.astimezone(UTC)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class LeaderElectionRecord:
    """The leader election state stored in a Lease's ``spec``.

    The timestamps are informational: electors judge expiry by their own clock, from the
    moment they saw the record change, never from these values.

    Attributes:
        holder_identity: the current holder; ``""`` when nobody holds (released).
        lease_duration_seconds: how long others must wait, after seeing the record change,
            before taking over (whole seconds; the Lease field is an integer).
        acquire_time: when the current holder acquired, or None.
        renew_time: when the current holder last renewed, or None.
        leader_transitions: how many times the holder changed.

    Invariants:
        ``lease_duration_seconds >= 0`` and ``leader_transitions >= 0``.
    """

    holder_identity: str = ""
    lease_duration_seconds: int = 0
    acquire_time: datetime | None = None
    renew_time: datetime | None = None
    leader_transitions: int = 0

    def to_lease_spec(self) -> dict[str, object]:
        """Return the Lease ``spec`` for this record (absent timestamps are omitted)."""
        spec: dict[str, object] = {
            "holderIdentity": self.holder_identity,
            "leaseDurationSeconds": self.lease_duration_seconds,
            "leaseTransitions": self.leader_transitions,
        }
        if self.acquire_time is not None:
            spec["acquireTime"] = format_microtime(self.acquire_time)
        if self.renew_time is not None:
            spec["renewTime"] = format_microtime(self.renew_time)
        return spec

    @classmethod
    def from_lease_spec(cls, spec: Mapping[str, object] | None) -> LeaderElectionRecord:
        """Build a record from a Lease ``spec``; missing fields take their zero values.

        Raises:
            ValueError: a field has the wrong type or a timestamp does not parse.
        """
        spec = spec or {}

        def integer(key: str) -> int:
            value = spec.get(key)
            if value is None:
                return 0
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"Lease spec.{key} is not an integer: {value!r}")
            return value

        def timestamp(key: str) -> datetime | None:
            value = spec.get(key)
            if value is None or value == "":
                return None
            if not isinstance(value, str):
                raise ValueError(f"Lease spec.{key} is not a timestamp: {value!r}")
            return parse_microtime(value)

        holder = spec.get("holderIdentity")
        return cls(
            holder_identity=holder if isinstance(holder, str) else "",
            lease_duration_seconds=integer("leaseDurationSeconds"),
            acquire_time=timestamp("acquireTime"),
            renew_time=timestamp("renewTime"),
            leader_transitions=integer("leaseTransitions"),
        )


def record_bytes(record: LeaderElectionRecord) -> bytes:
    """The canonical JSON of ``record``, compared by electors to notice any change."""
    return json.dumps(record.to_lease_spec(), sort_keys=True).encode()


class ResourceLock(Protocol):
    """Where the leader election record lives (≙ resourcelock.Interface).

    Thread-safety: implementations are thread-safe; the elector never calls them
    concurrently, but may call them from different threads.
    """

    @property
    def identity(self) -> str:
        """The identity this candidate writes as holder."""
        ...

    def get(self) -> tuple[LeaderElectionRecord, bytes]:
        """Read the record; return it and its canonical bytes (see ``record_bytes``).

        Raises:
            NotFoundError: the lock object does not exist.
            APIError, TransportError: the read failed.
        """
        ...

    def create(self, record: LeaderElectionRecord) -> None:
        """Create the lock object holding ``record``.

        Raises:
            ConflictError: it already exists.
            APIError, TransportError: the write failed.
        """
        ...

    def update(self, record: LeaderElectionRecord) -> None:
        """Replace the record, if the object is unchanged since this lock last read or wrote it.

        Raises:
            ConflictError: someone else changed it since (stale resourceVersion).
            APIError, TransportError: the write failed.
            RuntimeError: neither ``get`` nor ``create`` succeeded before.
        """
        ...

    def describe(self) -> str:
        """A human-readable name of the lock, such as ``namespace/name``."""
        ...


@final
class LeaseLock:
    """A ``ResourceLock`` on a ``coordination.k8s.io/v1`` Lease (≙ resourcelock.LeaseLock).

    ``get``, ``create`` and ``update`` each make one request through ``client``; the
    client's request timeout bounds them, so build it with a timeout of about
    ``max(1, renew_deadline / 2)`` (client-go does the same), e.g.
    ``connect(kubeconfig, request_timeout=5)``. Labels and other fields of the Lease are kept.

    Thread-safety: thread-safe; the remembered Lease is guarded by a lock that is never held
    during a request.

    Invariants:
        ``_lease`` is None or the Lease as last returned by the server to this lock.
    """

    def __init__(self, client: Client, namespace: str, name: str, identity: str) -> None:
        if not namespace or not name:
            raise ValueError("LeaseLock needs a namespace and a name")
        check_path_segment("Lease namespace", namespace)
        check_path_segment("Lease name", name)
        if not identity:
            raise ValueError("LeaseLock needs a non-empty identity")
        self._client = client
        self._namespace = namespace
        self._name = name
        self._identity = identity
        self._lock = threading.Lock()
        self._lease: Mapping[str, object] | None = None  # guarded by _lock

    @property
    def identity(self) -> str:
        """The identity this candidate writes as holder."""
        return self._identity

    def get(self) -> tuple[LeaderElectionRecord, bytes]:
        """GET the Lease; return its record and the record's canonical bytes.

        Raises:
            NotFoundError: the Lease does not exist.
            APIError, TransportError: the request failed.
            ValueError: the Lease spec is malformed.
        """
        lease = self._client.get(LEASES, self._name, self._namespace)
        record = LeaderElectionRecord.from_lease_spec(_spec(lease))
        with self._lock:
            self._lease = lease
        return record, record_bytes(record)

    def create(self, record: LeaderElectionRecord) -> None:
        """POST a new Lease holding ``record``.

        Raises:
            ConflictError: the Lease already exists.
            APIError, TransportError: the request failed.
        """
        body = {
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": record.to_lease_spec(),
        }
        lease = self._client.create(LEASES, body, self._namespace)
        with self._lock:
            self._lease = lease

    def update(self, record: LeaderElectionRecord) -> None:
        """PUT the remembered Lease with ``record`` as its spec (same resourceVersion).

        Raises:
            ConflictError: the Lease changed since this lock last saw it.
            APIError, TransportError: the request failed.
            RuntimeError: no Lease was read or created yet.
        """
        with self._lock:
            lease = self._lease
        if lease is None:
            raise RuntimeError(f"lease {self.describe()} not initialised: call get() or create()")
        # Keep fields we do not own (strategy, preferredHolder); replace all record fields.
        spec = {k: v for k, v in _spec(lease).items() if k not in _RECORD_FIELDS}
        spec.update(record.to_lease_spec())
        updated = self._client.replace(LEASES, {**lease, "spec": spec})
        with self._lock:
            self._lease = updated

    def describe(self) -> str:
        """Return ``namespace/name``."""
        return f"{self._namespace}/{self._name}"

    def __repr__(self) -> str:
        return f"LeaseLock({self.describe()!r}, identity={self._identity!r})"


def _spec(lease: Mapping[str, object]) -> Mapping[str, object]:
    spec = lease.get("spec")
    return spec if isinstance(spec, Mapping) else {}
