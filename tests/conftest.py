"""Suite-wide fixtures: fail any test that leaks a thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest


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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", type=int, default=1, help="randomized soak runs (default 1)")
    parser.addoption("--soak-seed", type=int, default=1, help="first soak seed")
    parser.addoption("--election-examples", type=int, default=25,
                     help="scenarios of the leader-election property test (default 25)")
