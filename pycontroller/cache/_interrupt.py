"""Making a reflector's blocking calls end at once when it is told to stop.

A LIST request, opening a watch and reading a stream block inside urllib3 until data arrives
or a timeout (30 s for a LIST, up to the inactivity timeout for a watch) passes; a stop event
cannot interrupt them. client-go cancels the request's context. Here a :class:`Interrupter`
connects the stop event to whatever is blocking now: an open stream is closed (the reader
wakes), and a request runs on a short-lived helper thread that the caller stops waiting for
(the helper thread ends by itself at the request's own timeout; what it returns late is
discarded, a stream closed).
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, Final, TypeVar, final

__all__ = ["Interrupted", "Interrupter"]

_T = TypeVar("_T")
_STOPPED: Final = object()


class Interrupted(Exception):
    """The call was abandoned because the owner stopped."""


@final
class Interrupter:
    """Runs blocking calls so that :meth:`interrupt` ends them at once.

    Thread-safety: thread-safe. ``interrupt`` is called once, from any thread; ``call`` and
    ``closing`` from the owner's thread (one at a time).
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._interrupted = False  # guarded by _lock
        self._cancel: Callable[[], None] | None = None  # guarded by _lock

    def interrupt(self) -> None:
        """Stop waiting: cancel the current call (if any) and every later one at once."""
        with self._lock:
            self._interrupted = True
            cancel, self._cancel = self._cancel, None
        if cancel is not None:
            cancel()

    @property
    def interrupted(self) -> bool:
        """Whether :meth:`interrupt` was called."""
        with self._lock:
            return self._interrupted

    @contextlib.contextmanager
    def closing(self, cancel: Callable[[], None]) -> Iterator[None]:
        """While inside, :meth:`interrupt` calls ``cancel`` (e.g. a stream's ``close``).

        If already interrupted, ``cancel`` runs at once and the body still runs (it will
        find its stream closed).
        """
        with self._lock:
            now = self._interrupted
            if not now:
                self._cancel = cancel
        if now:
            cancel()
        try:
            yield
        finally:
            with self._lock:
                if self._cancel is cancel:
                    self._cancel = None

    def call(self, fn: Callable[[], _T], *, discard: Callable[[_T], None] | None = None) -> _T:
        """Return ``fn()``, run on a helper thread; raise :class:`Interrupted` on interrupt.

        ``discard`` receives a result that arrives after the caller gave up (e.g. closes a
        stream nobody will read). Exceptions of ``fn`` propagate to the caller.
        """
        if self.interrupted:
            raise Interrupted(f"{self._name}: stopped")
        box: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        gate = threading.Lock()
        abandoned = [False]  # guarded by gate

        def work() -> None:
            try:
                outcome: tuple[bool, Any] = (True, fn())
            except BaseException as exc:  # handed to the caller, re-raised there
                outcome = (False, exc)
            with gate:
                if not abandoned[0]:
                    box.put(outcome)
                    return
            if outcome[0] and discard is not None:
                discard(outcome[1])

        thread = threading.Thread(target=work, daemon=True,
                                  name=f"pycontroller-reflector-call-{self._name}")
        with self.closing(lambda: box.put((False, _STOPPED))):
            thread.start()
            ok, value = box.get()
        if value is _STOPPED:
            with gate:
                abandoned[0] = True
                late = None if box.empty() else box.get()
            if late is not None and late[0] and discard is not None:
                discard(late[1])
            raise Interrupted(f"{self._name}: stopped")
        if not ok:
            raise value
        result: _T = value
        return result
