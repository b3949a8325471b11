"""Reflector: keeps a store in step with the server for one resource (≙ tools/cache/reflector.go).

Data flow: ListerWatcher → **Reflector** → store (the informer's FIFO) → informer. The only
list/watch loop in pycontroller, written as a state machine whose states carry their data
(as kube-rs's watcher does)::

    Listing ──ok──► Watching(stream) ──server closed──► Watching (from the last RV, no list)
      │               ├──410 Gone──────────► BackingOff(Listing) (at the last RV, unpaginated)
      │               ├──refused / 429─────► BackingOff(Watching)
      │               ├──stalled / broken──► Watching (at once; BackingOff(Listing) if < 1 s,
      │               │                      no events)
      │               └──ERROR / bad line──► BackingOff(Listing)
      └──error───► BackingOff(Listing)

Words: to *list* is to fetch the full state (a WatchList stream when the server supports
it, else a paginated LIST; a second list is a *relist*); a store is *synced* (the informer's
``has_synced``) once the first list has been processed; a *resync* replays the cache to the
handlers on a timer. A WatchList that fails (no progress within its deadline, broken or
malformed stream) falls back to LIST for this list only; a server that rejects it is
remembered.

Stopping: setting the stop event ends ``run`` at once in every state — a blocked LIST or
watch open is abandoned (see ``_interrupt``), an open stream (WatchList or watch) is closed,
a backoff sleep wakes. ``run`` never sets the stop event itself: if it dies on an unexpected
error the error propagates to its caller (the informer), which owns the reaction.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol, final, runtime_checkable

import structlog

from pycontroller._util._backoff import Backoff
from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller._util._logging import log_exception
from pycontroller.cache._interrupt import Interrupted, Interrupter
from pycontroller.cache._listing import CollectedRelist, Relist, list_pages, watch_list
from pycontroller.cache._reflector_metrics import ReflectorMetrics
from pycontroller.client._errors import api_error
from pycontroller.client._list_watch import EventStream, ListerWatcher
from pycontroller.client._watch import WatchDecodeError, WatchEvent, WatchStalledError
from pycontroller.errors import (
    ResourceExpiredError,
    TooManyRequestsError,
    TransportError,
)

_log = structlog.get_logger(__name__)
MIN_WATCH_TIMEOUT: Final = 300.0
SHORT_WATCH: Final = 1.0


class ReflectorStore(Protocol):
    """What a Reflector writes to (the informer's FIFO implements it).

    A store that also has ``start_relist`` (:class:`StreamingStore`, e.g. ``RealFIFO``)
    gets each list streamed into it object by object; any other store gets each complete
    list through ``replace``.

    Thread-safety: implementations must be thread-safe: ``resync`` comes from the
    reflector's resync thread, everything else from its main thread.
    """

    def replace(self, objects: list[dict[str, Any]], resource_version: str) -> None:
        """The full state at ``resource_version`` (after each list)."""
        ...

    def add(self, obj: dict[str, Any]) -> None:
        """A watch ADDED event."""
        ...

    def update(self, obj: dict[str, Any]) -> None:
        """A watch MODIFIED event."""
        ...

    def delete(self, obj: dict[str, Any]) -> None:
        """A watch DELETED event (``obj`` is the object's last state)."""
        ...

    def resync(self) -> None:
        """Replay the cache to the handlers (each resync period, if they want it)."""
        ...


@runtime_checkable
class StreamingStore(Protocol):
    """A :class:`ReflectorStore` that takes a list as it arrives (see ``StreamedRelist``)."""

    def start_relist(self) -> Relist:
        """Begin a list; the Reflector calls ``finish`` only once it is complete."""
        ...


# -- states -----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Listing:
    """List (WatchList, else paginated LIST), then watch.

    ``relist``: a list succeeded before (counted as a relist). ``from_scratch``: the last
    resourceVersion is gone (410 / too large), so list at ``""`` (a consistent read).
    Immutable, like every state.
    """

    relist: bool = False
    from_scratch: bool = False


@dataclass(frozen=True, slots=True)
class Watching:
    """Watch from the last resourceVersion: go on with ``stream`` (a finished WatchList's)
    or, if None, open a new watch."""

    stream: EventStream | None = None


@dataclass(frozen=True, slots=True)
class BackingOff:
    """Sleep the (jittered, growing) backoff, then go to ``then``."""

    then: Listing | Watching


State = Listing | Watching | BackingOff
_RELIST: Final = BackingOff(Listing(relist=True))
_REWATCH: Final = Watching()
_REWATCH_LATER: Final = BackingOff(Watching())


class ShortWatchError(TransportError):
    """A watch closed within a second without delivering any event."""


def _rv(obj: Mapping[str, Any]) -> str:
    # dict.get: a LazyObject's metadata is never left raw when it is an object. Any other
    # Mapping (a user's ListerWatcher, a transform's read-only metadata) reads as usual.
    meta = dict.get(obj, "metadata") if isinstance(obj, dict) else obj.get("metadata")
    if isinstance(meta, dict):
        rv = dict.get(meta, "resourceVersion")
    else:
        rv = meta.get("resourceVersion") if isinstance(meta, Mapping) else None
    return rv if type(rv) is str else str(rv or "")


# How a watch that ended with an error goes on (first match wins): a stalled or broken
# stream re-watches from the last RV at once; throttling backs off and re-watches; 410,
# a bad line, an ERROR event or anything else backs off and relists.
_ON_WATCH_ERROR: Final[tuple[tuple[type[BaseException], str, State], ...]] = (
    (ResourceExpiredError, "watch_expired", _RELIST),
    (TooManyRequestsError, "watch_throttled", _REWATCH_LATER),
    (WatchStalledError, "watch_stalled", _REWATCH),
    (WatchDecodeError, "watch_decode_failed", _RELIST),
    (TransportError, "watch_broken", _REWATCH),
    (BaseException, "watch_failed", _RELIST),
)


@dataclass(frozen=True, slots=True)
class _WatchEnd:
    """How one watch stream ended: the events it applied and the error, if any."""

    events: int
    error: Exception | None = None


@final
class Reflector:
    """Lists, then watches one resource and feeds every change into a store.

    Guarantees: after each successful list the store has received the full state at some
    resourceVersion — streamed object by object and then ``finish``-ed (a store with
    ``start_relist``), else in one ``replace`` — followed by every later event in server
    order; a list that fails midway is never finished (a streaming store keeps only what
    it received: real object versions, no deletions); watches resume
    from the last seen resourceVersion (bookmarks advance it); a 410 leads to a relist at
    the last seen version before falling back to a fresh consistent list, so a mass 410
    does not turn into a storm of full lists.

    Thread-safety: ``run`` is called once, on its own thread; ``last_resource_version``
    may be read from any thread. ``run`` returns promptly (well under a second) once
    ``stop`` is set, whatever it is doing; if it raises, its helper threads end when
    ``stop`` is set.
    """

    def __init__(
        self, lister_watcher: ListerWatcher, store: ReflectorStore, *, name: str = "",
        expected_kind: str | None = None, resync_period: float = 0.0,
        should_resync: Callable[[], bool] | None = None, page_size: int = 500,
        use_watch_list: bool = True, watch_list_deadline: float = 30.0,
        inactivity_timeout: float = 100.0, min_watch_timeout: float = MIN_WATCH_TIMEOUT,
        clock: Clock = REAL_CLOCK, backoff: Backoff | None = None,
        metrics: ReflectorMetrics | None = None,
        on_watch_error: Callable[[BaseException], None] | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._lw = lister_watcher
        self._store = store
        self.name = name or lister_watcher.description
        self._kind = expected_kind
        self._resync_period = resync_period
        self._should_resync = should_resync
        self._page_size = page_size
        self._watch_list_deadline = watch_list_deadline
        self._inactivity = inactivity_timeout
        self._min_watch_timeout = max(min_watch_timeout, 1.0)
        self._clock = clock
        self._backoff = backoff or Backoff(clock=clock)
        self._metrics = metrics or ReflectorMetrics.noop()
        self._on_watch_error = on_watch_error
        self._rand = rand
        self._log = _log.bind(component="reflector", reflector=self.name)
        self._lock = threading.Lock()
        self._last_rv = ""  # guarded by _lock
        # What this reflector learnt about its server (not loop state): whether it serves
        # WatchList at all, and whether an RV=0 list came back paginated (no watch cache).
        self._server_has_watch_list = use_watch_list
        self._server_paginates_at_zero = False
        self._interrupter = Interrupter(self.name)
        self._watching = threading.Event()  # a watch stream is open (resyncs only then)

    @property
    def last_resource_version(self) -> str:
        """The resourceVersion of the last list, event or bookmark applied ("" before)."""
        with self._lock:
            return self._last_rv

    def _set_rv(self, rv: str) -> None:
        if rv:
            with self._lock:
                self._last_rv = rv
            self._metrics.resource_version_advanced(rv, self._clock.now())

    # -- the loop ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; every expected error is logged, counted and retried.

        Never sets ``stop``. An unexpected error (a bug, a ``BaseException``) propagates.
        """
        helpers = [
            threading.Thread(target=self._interrupt_on_stop, args=(stop,), daemon=True,
                             name=f"pycontroller-reflector-stop-{self.name}"),
        ]
        if self._resync_period > 0:
            helpers.append(threading.Thread(target=self._resync_loop, args=(stop,),
                                            daemon=True,
                                            name=f"pycontroller-resync-{self.name}"))
        for thread in helpers:
            thread.start()
        self._log.info("reflector_started")
        state: State = Listing()
        try:
            while not stop.is_set():
                state = self._step(state, stop)
        finally:
            self._watching.clear()
            if isinstance(state, Watching) and state.stream is not None:
                state.stream.close()
        for thread in helpers:  # only after a normal end: they wait for stop
            thread.join()
        self._log.info("reflector_stopped")

    def _step(self, state: State, stop: threading.Event) -> State:
        if isinstance(state, BackingOff):
            delay = self._backoff.next()
            self._log.debug("backoff_sleep", seconds=round(delay, 3))
            self._clock.sleep(delay, stop)
            return state.then
        if isinstance(state, Listing):
            return self._list(state, stop)
        return self._watch(state, stop)

    def _report(self, event: str, exc: BaseException) -> None:
        level = self._log.info if isinstance(exc, ResourceExpiredError) else self._log.warning
        level(event, error=str(exc), error_type=type(exc).__name__)
        self._metrics.watch_error()
        if self._on_watch_error is not None:
            try:
                self._on_watch_error(exc)
            except Exception:
                log_exception(self._log, "watch_error_handler_failed")

    # -- Listing -----------------------------------------------------------------------
    def _list(self, state: Listing, stop: threading.Event) -> State:
        """Bring the store to the server's state; go on watching (on the WatchList stream)."""
        if state.relist:
            self._metrics.relist()
        from_scratch = state.from_scratch
        try:
            if self._server_has_watch_list:
                watching = self._watch_list(from_scratch)
                if watching is not None:
                    return watching
            rv = "" if from_scratch else (self.last_resource_version or "0")
            started = self._clock.now()
            relist = self._start_relist()
            try:
                page = list_pages(self._lw, rv=rv, limit=self._limit_for(rv),
                                  interrupter=self._interrupter, relist=relist)
            except ResourceExpiredError as exc:  # also "too large resource version"
                self._log.info("list_expired", resource_version=rv, error=str(exc))
                from_scratch, rv = True, ""
                relist.restart()
                page = list_pages(self._lw, rv=rv, limit=self._page_size,
                                  interrupter=self._interrupter, relist=relist)
            if stop.is_set():
                return state
            if rv == "0" and page.paginated:
                self._server_paginates_at_zero = True
            relist.finish(page.resource_version)
            self._set_rv(page.resource_version)
            duration = self._clock.now() - started
            self._metrics.list_done(duration, page.items)
            self._log.info("list_completed", items=page.items, pages=page.pages,
                           resource_version=page.resource_version, seconds=round(duration, 3))
            return _REWATCH
        except Exception as exc:
            if stop.is_set():  # e.g. Interrupted: no failure, we are leaving
                return state
            self._report("list_failed", exc)
            return BackingOff(Listing(relist=state.relist, from_scratch=from_scratch))

    def _watch_list(self, from_scratch: bool) -> Watching | None:
        """A WatchList streamed into the store; the stream to watch on, or None to LIST."""
        started = self._clock.now()
        relist = self._start_relist()
        result = watch_list(
            self._lw, rv="" if from_scratch else self.last_resource_version,
            deadline=self._watch_list_deadline, inactivity=self._inactivity,
            timeout_seconds=self._watch_timeout(), clock=self._clock,
            interrupter=self._interrupter, log=self._log, kind=self._kind, relist=relist,
        )
        if result.unsupported:
            self._server_has_watch_list = False  # remembered for this server and reflector
        if result.stream is None:
            return None  # what reached the store stays; the LIST that follows completes it
        try:
            relist.finish(result.resource_version)
        except BaseException:
            result.stream.close()  # not left open behind a failed list
            raise
        self._set_rv(result.resource_version)
        self._metrics.list_done(self._clock.now() - started, result.items)
        return Watching(result.stream)

    def _start_relist(self) -> Relist:
        """Stream the list into the store if it can take it so, else collect it."""
        if isinstance(self._store, StreamingStore):
            return self._store.start_relist()
        return CollectedRelist(self._store.replace)

    def _limit_for(self, rv: str) -> int | None:
        if self._server_paginates_at_zero or rv in ("", "0"):
            return self._page_size
        return None  # exact RV: unpaginated so the watch cache can serve it

    # -- Watching ----------------------------------------------------------------------
    def _watch_timeout(self) -> int:
        return int(self._min_watch_timeout * (1.0 + self._rand()))

    def _open(self, rv: str) -> EventStream | State:
        """A new watch stream, or the state to go to when it cannot be opened."""
        try:
            stream: EventStream = self._interrupter.call(
                lambda: self._lw.watch(
                    resource_version=rv, timeout_seconds=self._watch_timeout(),
                    send_initial_events=None, resource_version_match=None,
                    inactivity_timeout=self._inactivity),
                discard=lambda late: late.close())
        except Interrupted:
            return _REWATCH  # stop is set: the loop ends
        except ResourceExpiredError as exc:
            self._report("watch_expired", exc)
            return _RELIST
        except (TooManyRequestsError, TransportError) as exc:  # refused, throttled: no relist
            self._report("watch_open_failed", exc)
            return _REWATCH_LATER
        except Exception as exc:
            self._report("watch_open_failed", exc)
            return _RELIST
        self._metrics.watch_started()
        self._log.debug("watch_started", resource_version=rv)
        return stream

    def _watch(self, state: Watching, stop: threading.Event) -> State:
        started = self._clock.now()
        rv = self.last_resource_version
        stream = state.stream
        if stream is None:
            opened = self._open(rv)
            if isinstance(opened, (Listing, Watching, BackingOff)):
                return opened
            stream = opened
        self._watching.set()
        try:
            with self._interrupter.closing(stream.close):
                end = self._consume(stream, rv, stop)
        finally:
            self._watching.clear()
            stream.close()
        duration = self._clock.now() - started
        self._metrics.watch_done(duration, end.events)
        if end.error is not None:
            event, after = next((e, s) for t, e, s in _ON_WATCH_ERROR
                                if isinstance(end.error, t))
            if not stop.is_set():
                self._report(event, end.error)
            if after is not _REWATCH:
                return after
        if stop.is_set():
            return _REWATCH
        if end.events == 0 and duration < SHORT_WATCH:
            self._metrics.short_watch()
            self._report("watch_too_short", ShortWatchError("watch closed at once"))
            return _RELIST
        self._log.debug("watch_ended", events=end.events, seconds=round(duration, 3))
        return _REWATCH

    def _consume(self, stream: EventStream, opened_at: str, stop: threading.Event) -> _WatchEnd:
        """Apply events until the stream ends or fails."""
        # A watch from "" or "0" starts with synthetic ADDEDs in no RV order: do not
        # advance the RV until the first non-ADDED event.
        propagate = opened_at not in ("", "0")
        events = 0
        try:
            for event in stream:
                if stop.is_set():
                    break
                if event.type == "ERROR":
                    raise api_error(200, event.object)
                if not self._accept(event):
                    continue
                events += 1
                self._apply(event)
                if event.type != "ADDED":
                    propagate = True
                if propagate:
                    self._set_rv(_rv(event.object))
        except Exception as exc:
            return _WatchEnd(events, exc)
        return _WatchEnd(events)

    def _accept(self, event: WatchEvent) -> bool:
        obj = event.object
        if isinstance(obj, dict):  # (see _rv)
            meta, kind = dict.get(obj, "metadata"), dict.get(obj, "kind")
        else:
            meta, kind = obj.get("metadata"), obj.get("kind")
        if not isinstance(meta, dict):
            self._log.warning("watch_event_skipped", reason="no metadata", type=event.type)
            return False
        if self._kind and kind and kind != self._kind and event.type != "BOOKMARK":
            self._log.warning("watch_event_skipped", reason="unexpected kind", kind=kind)
            return False
        return True

    def _apply(self, event: WatchEvent) -> None:
        try:
            if event.type == "ADDED":
                self._store.add(event.object)
            elif event.type == "MODIFIED":
                self._store.update(event.object)
            elif event.type == "DELETED":
                self._store.delete(event.object)
        except Exception:
            log_exception(self._log, "store_update_failed", type=event.type)

    # -- helper threads ----------------------------------------------------------------
    def _interrupt_on_stop(self, stop: threading.Event) -> None:
        stop.wait()
        self._interrupter.interrupt()

    def _resync_loop(self, stop: threading.Event) -> None:
        while not self._clock.sleep(self._resync_period, stop):
            if not self._watching.is_set():
                continue
            if self._should_resync is not None and not self._should_resync():
                continue
            try:
                self._store.resync()
                self._log.debug("resync_queued")
            except Exception:
                log_exception(self._log, "resync_failed")
