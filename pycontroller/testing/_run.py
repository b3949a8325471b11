"""Run a Manager inside a test, and wait on conditions with a deadline."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from pycontroller._util._wait import wait_for as _wait_for
from pycontroller.controller import Manager

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 30.0, *, interval: float = 0.05,
             message: str = "condition") -> T:
    """Call ``condition`` until it returns a truthy value, and return that value.

    Use it instead of ``sleep``: it returns as soon as the condition holds, and fails with
    a clear message when it does not hold within ``timeout`` seconds.

    Raises:
        TimeoutError: ``condition`` stayed falsy for ``timeout`` seconds (names ``message``).
    """
    return _wait_for(condition, timeout=timeout, interval=interval, message=message)


@contextlib.contextmanager
def run_manager(manager: Manager, *, ready_timeout: float = 60.0,
                stop_timeout: float = 60.0) -> Iterator[Manager]:
    """Run ``manager`` on a background thread for the ``with`` block; stop it on exit.

    Entering waits until ``manager.ready()`` and ``manager.elected()`` (caches synced,
    workers started: with leader election, once it leads). Leaving
    sets the stop event, which drains the workers as SIGTERM would, and waits for
    ``run()`` to return.

    Build the Manager with ``handle_signals=False`` (signals belong to the main thread)
    and, usually, ``metrics_bind_address=None, health_probe_bind_address=None``.

    Raises:
        RuntimeError: ``run()`` returned before becoming ready or returned non-zero, or
            did not stop within ``stop_timeout`` seconds.
        TimeoutError: not ready within ``ready_timeout`` seconds.
    """
    stop = threading.Event()
    result: list[int] = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(manager.run(stop))
        except BaseException as exc:  # handed to the test thread below
            failure.append(exc)

    thread = threading.Thread(target=target, name="pycontroller-test-manager", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + ready_timeout
        while not (manager.ready()[0] and manager.elected()):
            if not thread.is_alive():
                raise RuntimeError(
                    f"the manager stopped before it was ready (exit code {result or failure})"
                ) from (failure[0] if failure else None)
            if time.monotonic() >= deadline:
                raise TimeoutError(f"the manager was not ready within {ready_timeout:.0f}s: "
                                   f"{manager.ready()[1]}")
            time.sleep(0.02)
        yield manager
    finally:
        stop.set()
        thread.join(stop_timeout)
    if thread.is_alive():
        raise RuntimeError(f"the manager did not stop within {stop_timeout:.0f}s")
    if failure:
        raise RuntimeError("the manager failed") from failure[0]
    if result and result[0] != 0:
        raise RuntimeError(f"the manager exited with code {result[0]}")
