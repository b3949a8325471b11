"""Tests for pycontroller.cache._mutation_detector."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from pycontroller.cache import ENV_CACHE_MUTATION_DETECTOR, CacheMutationDetector
from pycontroller.testing._fake_clock import FakeClock

pytestmark = pytest.mark.allow_cache_mutation  # these tests mutate on purpose


def pod(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "labels": {"app": "x"}}}


def test_unchanged_objects_are_not_reported() -> None:
    detector = CacheMutationDetector(enabled=True)
    detector.add_object(pod("a"))
    assert detector.check() == []


def test_mutation_is_logged_with_fixed_event_name_then_raised() -> None:
    detector = CacheMutationDetector(enabled=True, name="pods")
    cached = pod("a")
    detector.add_object(cached)
    cached["metadata"]["labels"]["app"] = "changed"
    with capture_logs() as logs, pytest.raises(AssertionError, match="ns/a"):
        detector.check()
    assert logs == [{"event": "cache_mutation_detected", "key": "ns/a", "informer": "pods",
                     "log_level": "error"}]


def test_nested_key_order_change_is_not_a_mutation() -> None:
    detector = CacheMutationDetector(enabled=True)
    cached: dict[str, Any] = {"metadata": {"name": "a"}, "spec": {"x": 1, "y": 2}}
    detector.add_object(cached)
    cached["spec"] = {"y": 2, "x": 1}
    assert detector.check() == []


def test_mutation_is_reported_once_without_raising_when_asked() -> None:
    detector = CacheMutationDetector(enabled=True, raise_on_mutation=False)
    cached = pod("a")
    detector.add_object(cached)
    detector.add_object(pod("b"))
    cached["spec"] = {}
    with capture_logs():
        assert detector.check() == ["ns/a"]
        assert detector.check() == []
    assert len(detector) == 1


def test_objects_orjson_cannot_encode_are_compared_by_deep_copy() -> None:
    detector = CacheMutationDetector(enabled=True, raise_on_mutation=False)
    cached: dict[str, Any] = {"metadata": {"name": "odd"}, "data": {1, 2}}  # a set
    detector.add_object(cached)
    assert detector.check() == []
    cached["data"].add(3)
    with capture_logs():
        assert detector.check() == ["odd"]


def test_non_mapping_objects_are_described_by_type() -> None:
    detector = CacheMutationDetector(enabled=True, raise_on_mutation=False)
    cached = [1, 2]
    detector.add_object(cached)
    cached.append(3)
    with capture_logs():
        (description,) = detector.check()
    assert description.startswith("<list at 0x")


def test_disabled_detector_records_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_CACHE_MUTATION_DETECTOR, raising=False)
    detector = CacheMutationDetector()
    assert not detector.enabled
    cached = pod("a")
    detector.add_object(cached)
    cached["spec"] = {}
    assert detector.check() == []
    assert detector.maybe_check() == []
    assert len(detector) == 0


@pytest.mark.parametrize(("value", "enabled"), [("1", True), ("true", True), ("ON", True),
                                                ("0", False), ("", False), ("no", False)])
def test_environment_variable_turns_it_on(monkeypatch: pytest.MonkeyPatch, value: str,
                                          enabled: bool) -> None:
    monkeypatch.setenv(ENV_CACHE_MUTATION_DETECTOR, value)
    assert CacheMutationDetector().enabled is enabled


def test_explicit_flag_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_CACHE_MUTATION_DETECTOR, "1")
    assert not CacheMutationDetector(enabled=False).enabled


def test_maybe_check_runs_once_per_period_of_the_injected_clock() -> None:
    clock = FakeClock()
    detector = CacheMutationDetector(enabled=True, period=1.0, clock=clock,
                                     raise_on_mutation=False)
    cached = pod("a")
    detector.add_object(cached)
    cached["spec"] = {}
    assert detector.maybe_check() == []  # not due yet
    clock.step(1.0)
    with capture_logs():
        assert detector.maybe_check() == ["ns/a"]
    other = pod("b")
    detector.add_object(other)
    other["spec"] = {}
    clock.step(0.5)
    assert detector.maybe_check() == []
    clock.step(0.5)
    with capture_logs():
        assert detector.maybe_check() == ["ns/b"]
