"""Fan-out of informer notifications to handlers (≙ shared_informer.go processorListener).

Data flow: informer (after updating its indexer) → ``_Listener.push_all`` (never blocks) →
the listener's own thread → the user's ``on_add``/``on_update``/``on_delete``. Each handler
has an unbounded buffer and one thread, so a slow handler delays nobody else; its backlog is
visible through ``Registration.pending()`` (and the informer's metrics).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any, Final, final

import structlog

from pycontroller._util._clock import Clock
from pycontroller._util._logging import log_exception
from pycontroller.cache._keys import DeletedFinalStateUnknown

_log = structlog.get_logger(__name__)

Obj = Mapping[str, Any]
OnAdd = Callable[[Obj, bool], object]
OnUpdate = Callable[[Obj, Obj], object]
OnDelete = Callable[[Obj | DeletedFinalStateUnknown[Obj]], object]
MIN_RESYNC: Final = 1.0

_ADD, _UPDATE, _DELETE = 0, 1, 2
Notification = tuple[int, Any, Any]
"""(``_ADD``, obj, is_in_initial_list), (``_UPDATE``, old, new) or (``_DELETE``, obj, None)."""


def resync_period_for(requested: float, check_period: float) -> float:
    """The resync period a handler gets (≙ client-go's ``determineResyncPeriod``).

    0 if it asked for none, or if its informer has no resync (``check_period`` 0: the
    informer never resyncs, so neither does any handler); else at least ``check_period``.
    """
    if requested <= 0 or check_period <= 0:
        return 0.0
    return max(requested, check_period)


@final
class Registration:
    """The handle ``add_event_handler`` returns.

    ``has_synced()`` is true once the informer has synced **and** this handler has
    returned from ``on_add`` for every object of the initial list (or, for a handler added
    later, for every object that was cached when it was added). Wait on this, not on the
    informer, before starting workers.

    Thread-safety: thread-safe.
    """

    def __init__(self, listener: _Listener, informer_synced: Callable[[], bool]) -> None:
        self._listener = listener
        self._informer_synced = informer_synced

    def has_synced(self) -> bool:
        """Whether this handler has seen the whole initial state."""
        return self._informer_synced() and self._listener.initial_pending() == 0

    def pending(self) -> int:
        """Notifications buffered for this handler and not yet delivered."""
        return self._listener.pending()

    @property
    def resync_period(self) -> float:
        """The effective resync period of this handler (0: never)."""
        return self._listener.resync_period

    @property
    def removed(self) -> bool:
        """Whether the handler was removed or its informer stopped."""
        return self._listener.stopped


@final
class _Listener:
    """One handler's buffer and thread. Thread-safe; see module docstring."""

    def __init__(self, name: str, *, on_add: OnAdd | None, on_update: OnUpdate | None,
                 on_delete: OnDelete | None, requested_resync: float, resync_period: float,
                 clock: Clock) -> None:
        self.name = name
        self._handlers = (on_add, on_update, on_delete)
        self.requested_resync = requested_resync  # as asked (after the 1 s floor)
        self.resync_period = resync_period  # in effect (0: never); see resync_period_for
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        # Appended under _cond; the delivery thread pops from it without the lock (deque
        # appends and pops are atomic) and takes the lock only to wait for more (and to
        # count an initial-list add as done).
        self._buffer: deque[Notification] = deque()
        self._initial = 0  # guarded by _cond; queued initial-list adds not yet returned
        self._idle = False  # guarded by _cond; the delivery thread waits for a push
        self.stopped = False  # guarded by _cond
        self.next_resync = clock.now() + resync_period
        # Whether "unchanged" updates (a resync, or a relisted object with the same RV) reach
        # this handler (client-go's "syncing listener"). True from the start, as in
        # client-go: until the first resync check every handler gets them; each check then
        # keeps only the handlers that are due. Guarded by the informer's delta lock.
        self.resyncing = True
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._log = _log.bind(component="informer", handler=name)

    def start(self) -> None:
        """Start delivering."""
        self._thread.start()

    def push(self, kind: int, a: Any, b: Any = None) -> None:
        """Queue a notification (``_ADD`` with b=is_in_initial_list, ``_UPDATE``, ``_DELETE``)."""
        self.push_all([(kind, a, b)], bool(kind == _ADD and b))

    def push_all(self, notifications: list[Notification], is_in_initial_list: bool) -> None:
        """Queue notifications in order, in one lock round (the informer's batches).

        ``is_in_initial_list`` must be the flag of every ``_ADD`` among them (each counts
        towards ``initial_pending`` until delivered).
        """
        with self._cond:
            if self.stopped:
                return
            if is_in_initial_list:
                self._initial += sum(1 for n in notifications if n[0] == _ADD)
            self._buffer.extend(notifications)
            if self._idle:
                self._idle = False
                self._cond.notify()

    def pending(self) -> int:
        """Buffered notifications."""
        with self._cond:
            return len(self._buffer)

    def initial_pending(self) -> int:
        """Initial-list adds not yet returned from ``on_add``."""
        with self._cond:
            return self._initial

    def due_for_resync(self, now: float) -> bool:
        """Mark (and return) whether this handler's resync is due at ``now``."""
        if self.resync_period <= 0:
            self.resyncing = False
            return False
        self.resyncing = now >= self.next_resync
        if self.resyncing:
            self.next_resync = now + self.resync_period
        return self.resyncing

    def stop(self) -> None:
        """Stop delivering; buffered notifications are dropped, a running call completes."""
        with self._cond:
            self.stopped = True
            self._buffer.clear()
            self._initial = 0
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread (not from inside a handler)."""
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _run(self) -> None:
        buffer = self._buffer
        while True:
            with self._cond:
                while not buffer and not self.stopped:
                    self._idle = True  # (push_all clears it when it notifies)
                    self._cond.wait()
                self._idle = False
                if self.stopped:
                    return
            # Deliver what is buffered without a lock round per notification. A concurrent
            # stop() clears the buffer: delivery ends after at most the running call.
            while not self.stopped:
                try:
                    kind, a, b = buffer.popleft()
                except IndexError:
                    break
                self._deliver(kind, a, b)

    def _deliver(self, kind: int, a: Any, b: Any) -> None:
        handler: Callable[..., object] | None = self._handlers[kind]
        try:
            if handler is not None:
                if kind == _DELETE:
                    handler(a)
                else:
                    handler(a, b)
        except Exception:  # a failing handler must not stop the others
            log_exception(self._log, "handler_failed",
                          notification=("add", "update", "delete")[kind])
        finally:
            if kind == _ADD and b:
                with self._cond:
                    if self._initial > 0:
                        self._initial -= 1
