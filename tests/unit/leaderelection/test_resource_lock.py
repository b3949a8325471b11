"""LeaderElectionRecord (de)serialisation and LeaseLock request shapes (spec §6.1)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, cast

import pytest

from pycontroller.client import LEASES, Client, Resource
from pycontroller.errors import ConflictError, NotFoundError
from pycontroller.leaderelection import (
    LeaderElectionRecord,
    LeaseLock,
    format_microtime,
    parse_microtime,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_microtime_format_is_exact() -> None:
    assert format_microtime(T0) == "2026-01-02T03:04:05.000000Z"
    assert format_microtime(T0 + timedelta(microseconds=123456)) == "2026-01-02T03:04:05.123456Z"
    east = T0.astimezone(timezone(timedelta(hours=2)))
    assert format_microtime(east) == "2026-01-02T03:04:05.000000Z"
    with pytest.raises(ValueError, match="aware"):
        format_microtime(datetime(2026, 1, 2))


@pytest.mark.parametrize("text", ["2026-01-02T03:04:05Z", "2026-01-02T03:04:05.000000Z",
                                  "2026-01-02T05:04:05+02:00"])
def test_parse_microtime_accepts_rfc3339(text: str) -> None:
    assert parse_microtime(text) == T0


def test_parse_microtime_rejects_garbage_and_naive() -> None:
    with pytest.raises(ValueError):
        parse_microtime("yesterday")
    with pytest.raises(ValueError, match="time zone"):
        parse_microtime("2026-01-02T03:04:05")


def test_record_round_trips_through_the_lease_spec() -> None:
    record = LeaderElectionRecord(
        holder_identity="a", lease_duration_seconds=15, acquire_time=T0,
        renew_time=T0 + timedelta(seconds=2, microseconds=7), leader_transitions=3)
    spec = record.to_lease_spec()
    assert spec == {"holderIdentity": "a", "leaseDurationSeconds": 15, "leaseTransitions": 3,
                    "acquireTime": "2026-01-02T03:04:05.000000Z",
                    "renewTime": "2026-01-02T03:04:07.000007Z"}
    assert LeaderElectionRecord.from_lease_spec(spec) == record


def test_record_zero_values_and_missing_fields() -> None:
    empty = LeaderElectionRecord.from_lease_spec(None)
    assert empty == LeaderElectionRecord()
    assert empty.to_lease_spec() == {"holderIdentity": "", "leaseDurationSeconds": 0,
                                     "leaseTransitions": 0}
    assert LeaderElectionRecord.from_lease_spec({"holderIdentity": "x"}).holder_identity == "x"


@pytest.mark.parametrize("spec", [{"leaseDurationSeconds": "15"}, {"leaseTransitions": True},
                                  {"renewTime": 5}, {"acquireTime": "soon"}])
def test_record_rejects_malformed_specs(spec: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LeaderElectionRecord.from_lease_spec(spec)


def test_record_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        LeaderElectionRecord().holder_identity = "x"  # type: ignore[misc]


class StubClient:
    """Stands in for Client: one Lease in memory, resourceVersion checked on PUT."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.rv = 0
        self.puts: list[dict[str, Any]] = []

    def _stored(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        self.rv += 1
        self.lease = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self.rv)}}
        return self.lease

    def get(self, resource: Resource, name: str, namespace: str | None = None) -> Any:
        assert resource is LEASES and name == "lock" and namespace == "ns"
        if self.lease is None:
            raise NotFoundError(404, "NotFound", "leases.coordination.k8s.io lock not found")
        return self.lease

    def create(self, resource: Resource, obj: Mapping[str, Any],
               namespace: str | None = None) -> Any:
        assert resource is LEASES and namespace == "ns"
        if self.lease is not None:
            raise ConflictError(409, "AlreadyExists", "exists")
        return self._stored(obj)

    def replace(self, resource: Resource, obj: Mapping[str, Any]) -> Any:
        self.puts.append(dict(obj))
        assert self.lease is not None
        if obj["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ConflictError(409, "Conflict", "the object has been modified")
        return self._stored(obj)


def make_lock(stub: StubClient, identity: str = "me") -> LeaseLock:
    return LeaseLock(cast(Client, stub), "ns", "lock", identity)


def test_lease_lock_creates_gets_and_updates_with_resource_version() -> None:
    stub = StubClient()
    lock = make_lock(stub)
    assert lock.describe() == "ns/lock" and lock.identity == "me"
    with pytest.raises(NotFoundError):
        lock.get()
    with pytest.raises(RuntimeError, match="get\\(\\) or create\\(\\)"):
        lock.update(LeaderElectionRecord())
    rec = LeaderElectionRecord(holder_identity="me", lease_duration_seconds=15,
                               acquire_time=T0, renew_time=T0)
    lock.create(rec)
    assert stub.lease is not None
    assert stub.lease["kind"] == "Lease" and stub.lease["metadata"]["namespace"] == "ns"
    got, raw = lock.get()
    assert got == rec and raw == make_lock(stub, "other").get()[1]
    lock.update(dataclasses.replace(rec, renew_time=T0 + timedelta(seconds=2)))
    assert stub.puts[-1]["metadata"]["resourceVersion"] == "1"
    assert stub.lease["spec"]["renewTime"] == "2026-01-02T03:04:07.000000Z"


def test_lease_lock_update_is_refused_when_stale_and_keeps_foreign_fields() -> None:
    stub = StubClient()
    first, second = make_lock(stub, "a"), make_lock(stub, "b")
    first.create(LeaderElectionRecord(holder_identity="a", lease_duration_seconds=15,
                                      renew_time=T0))
    assert stub.lease is not None
    stub.lease["spec"]["strategy"] = "OldestEmulationVersion"
    second.get()
    second.update(LeaderElectionRecord(holder_identity="b", lease_duration_seconds=15))
    assert stub.lease["spec"]["strategy"] == "OldestEmulationVersion"
    assert "renewTime" not in stub.lease["spec"]  # record fields are replaced, not merged
    with pytest.raises(ConflictError):
        first.update(LeaderElectionRecord(holder_identity="a", lease_duration_seconds=15))


@pytest.mark.parametrize(("ns", "name", "identity"), [("", "l", "i"), ("n", "", "i"),
                                                       ("n", "l", "")])
def test_lease_lock_validates_its_arguments(ns: str, name: str, identity: str) -> None:
    with pytest.raises(ValueError):
        LeaseLock(cast(Client, StubClient()), ns, name, identity)
