"""The public test kit: wait_for, the fixture names, and the mutation check's ini option."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import pycontroller.testing
from pycontroller.testing import FakeClock, FakeListerWatcher, wait_for

INNER_TEST = """
from pycontroller.cache import CacheMutationDetector

def test_mutates_a_cached_object():
    detector = CacheMutationDetector(enabled=True, raise_on_mutation=False)
    cached = {"metadata": {"name": "a", "namespace": "ns"}}
    detector.add_object(cached)
    cached["spec"] = {"changed": True}
    assert detector.check() == ["ns/a"]
"""


def test_wait_for_returns_the_truthy_value() -> None:
    box: list[int] = []
    threading.Timer(0.05, box.append, (7,)).start()
    assert wait_for(lambda: box and box[0], 10) == 7


def test_wait_for_times_out_naming_the_condition() -> None:
    with pytest.raises(TimeoutError, match="the answer"):
        wait_for(lambda: False, 0.1, message="the answer")


def test_fakes_are_public() -> None:
    assert {"FakeClock", "FakeListerWatcher", "FakeStream", "run_manager",
            "wait_for"} <= set(pycontroller.testing.__all__)
    lw = FakeListerWatcher("ConfigMap")
    lw.upsert({"metadata": {"name": "a", "namespace": "ns"}})
    page = lw.list(resource_version=None, resource_version_match=None, limit=None,
                   continue_token=None)
    assert [o["metadata"]["name"] for o in page["items"]] == ["a"]
    assert FakeClock(5.0).now() == 5.0


def test_every_watch_of_the_fake_gets_its_own_copy_of_an_event() -> None:
    """Informers transform (mutate) what they receive: two watches must never share an
    object, deletions included."""
    lw = FakeListerWatcher()
    options = {"resource_version": "0", "timeout_seconds": 60, "send_initial_events": False,
               "resource_version_match": None, "inactivity_timeout": 5.0}
    streams = [iter(lw.watch(**options)) for _ in range(2)]  # type: ignore[arg-type]
    lw.upsert({"metadata": {"name": "a", "namespace": "ns"}})
    lw.remove("ns", "a")
    for _ in ("ADDED", "DELETED"):
        first, second = (next(stream) for stream in streams)
        assert first.type == second.type and first.object == second.object
        assert first.object is not second.object, first.type
        assert first.object["metadata"] is not second.object["metadata"], first.type


def test_plugin_fixtures_share_the_kube_prefix(kube_fake_clock: FakeClock,
                                               request: pytest.FixtureRequest) -> None:
    from pycontroller.testing import pytest_plugin

    names = {name for name, value in vars(pytest_plugin).items()
             if hasattr(value, "_fixture_function_marker") or
             type(value).__name__ == "FixtureFunctionDefinition"}
    public = {n for n in names if not n.startswith("_")}
    assert public >= {"kube_client", "kube_manager", "kube_fake_clock"}
    assert all(n.startswith("kube_") for n in public), public
    assert kube_fake_clock.now() == 1000.0


def run_inner(tmp_path: Path, ini: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n" + ini)
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYCONTROLLER_CACHE_MUTATION_DETECTOR", "PYTEST_ADDOPTS")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", str(tmp_path)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_mutation_check_fails_the_test_by_default(tmp_path: Path) -> None:
    proc = run_inner(tmp_path, "")
    assert proc.returncode == 1, proc.stdout
    assert "handlers mutated cached objects" in proc.stdout


def test_mutation_check_is_switched_off_by_the_ini_option(tmp_path: Path) -> None:
    proc = run_inner(tmp_path, "kube_cache_mutation_check = false\n")
    assert proc.returncode == 0, proc.stdout
