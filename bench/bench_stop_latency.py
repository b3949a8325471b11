"""How long a Reflector takes to return after its stop event is set, in each state.

Runs against the in-memory FakeListerWatcher; blocking requests are simulated the way a
silent server blocks them (a LIST waits for its 30 s read timeout, a watch open for the
watch's read timeout, a WatchList without its end bookmark for ``watch_list_deadline``).
Each measurement is capped at ``--cap`` seconds (reported as ">= cap").

Usage: ``python bench/bench_stop_latency.py [--cap 35]``.
"""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Callable
from typing import Any

from pycontroller._util._backoff import Backoff
from pycontroller.cache._reflector import Reflector
from pycontroller.errors import ServerError
from pycontroller.testing._fake_lister_watcher import FakeListerWatcher


class _Store:
    def add(self, obj: Any) -> None: ...
    def update(self, obj: Any) -> None: ...
    def delete(self, obj: Any) -> None: ...
    def replace(self, objects: Any, resource_version: str) -> None: ...
    def resync(self) -> None: ...


def _block(lw: FakeListerWatcher, verb: str, entered: threading.Event,
           release: threading.Event, seconds: float) -> None:
    real = getattr(lw, verb)

    def blocked(**kw: Any) -> Any:
        if verb == "list" or not kw["send_initial_events"]:
            entered.set()
            release.wait(seconds)
        return real(**kw)

    setattr(lw, verb, blocked)


def _measure(setup: Callable[[FakeListerWatcher, threading.Event], dict[str, Any]],
             cap: float) -> float:
    lw = FakeListerWatcher()
    lw.upsert({"metadata": {"name": "a", "namespace": "default"}})
    ready, release = threading.Event(), threading.Event()
    options = setup(lw, ready)
    options.setdefault("backoff", Backoff(initial=0.001, cap=0.002))
    reflector = Reflector(lw, _Store(), expected_kind="Pod", **options)
    stop = threading.Event()
    thread = threading.Thread(target=reflector.run, args=(stop,), daemon=True)
    thread.start()
    assert ready.wait(10), "state not reached"
    time.sleep(0.2)  # settle inside the state
    started = time.monotonic()
    stop.set()
    thread.join(cap)
    elapsed = time.monotonic() - started
    release.set()
    lw.close_watches()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cap", type=float, default=35.0)
    cap = parser.parse_args().cap
    read_timeout = 30.0

    def initial_watch_list(lw: FakeListerWatcher, ready: threading.Event) -> dict[str, Any]:
        lw.watch_list = False  # the end bookmark never comes
        real = lw.watch

        def watch(**kw: Any) -> Any:
            ready.set()
            return real(**kw)

        lw.watch = watch  # type: ignore[method-assign]
        return {"watch_list_deadline": 30.0}

    def list_page(lw: FakeListerWatcher, ready: threading.Event) -> dict[str, Any]:
        _block(lw, "list", ready, threading.Event(), read_timeout)
        return {"use_watch_list": False}

    def watch_open(lw: FakeListerWatcher, ready: threading.Event) -> dict[str, Any]:
        _block(lw, "watch", ready, threading.Event(), read_timeout)
        return {"use_watch_list": False}

    def backoff(lw: FakeListerWatcher, ready: threading.Event) -> dict[str, Any]:
        lw.list_errors.append(ServerError(500, "InternalError", "boom"))
        real = lw.list

        def listing(**kw: Any) -> Any:
            ready.set()
            return real(**kw)

        lw.list = listing  # type: ignore[method-assign]
        return {"use_watch_list": False, "backoff": Backoff(initial=60.0, cap=120.0)}

    def watching(lw: FakeListerWatcher, ready: threading.Event) -> dict[str, Any]:
        real = lw.watch

        def watch(**kw: Any) -> Any:
            stream = real(**kw)
            ready.set()
            return stream

        lw.watch = watch  # type: ignore[method-assign]
        return {"use_watch_list": False}

    states = {"initial WatchList": initial_watch_list, "LIST page": list_page,
              "opening a watch": watch_open, "backoff": backoff, "watch": watching}
    for name, setup in states.items():
        elapsed = _measure(setup, cap)
        shown = f">= {cap:.0f} s" if elapsed >= cap else f"{elapsed * 1000:.1f} ms"
        print(f"{name:20s} {shown}", flush=True)


if __name__ == "__main__":
    main()
