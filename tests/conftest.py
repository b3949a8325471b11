"""Suite-wide fixtures: fail any test that leaks a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from pycontroller.client import _lazy


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [t for t in threading.enumerate()
                  if t not in before and t.is_alive() and t.name.startswith("pycontroller")]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leaked, f"test leaked threads: {[t.name for t in leaked]}"


@pytest.fixture(params=["c", "python"])
def lazy_impl(request: pytest.FixtureRequest) -> Iterator[str]:
    """Run a test with the C module building and untracking decoded objects ("c"), then
    with the pure-Python code ("python"); skipped for "c" where the module was not built
    (``test_speedups.py`` fails when that happens with a C compiler at hand)."""
    if request.param == "c" and _lazy.SPEEDUPS is None:
        pytest.skip("pycontroller._speedups was not built")
    _lazy._use_speedups(_lazy.SPEEDUPS if request.param == "c" else None)
    yield request.param
    _lazy._use_speedups(_lazy.SPEEDUPS)  # (after monkeypatch's undo: the module's own table)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", type=int, default=1, help="randomized soak runs (default 1)")
    parser.addoption("--soak-seed", type=int, default=1, help="first soak seed")
    parser.addoption("--election-examples", type=int, default=25,
                     help="scenarios of the leader-election property test (default 25)")
