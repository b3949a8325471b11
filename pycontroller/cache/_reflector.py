"""Reflector: keeps a FIFO in step with the server for one resource (≙ tools/cache/reflector.go).

Data flow: ListerWatcher → **Reflector** → FIFO → informer. The only list/watch loop in
pycontroller, written as an explicit state machine::

    SYNC ──ok──► WATCH ──server closed──► WATCH (from the last RV, no relist)
      │            ├──410 Gone──────────► BACKOFF → SYNC (at the last RV, unpaginated)
      │            ├──refused / 429─────► BACKOFF → WATCH
      │            ├──stalled / broken──► WATCH (immediately; BACKOFF → SYNC if < 1 s, no events)
      │            └──ERROR / bad line──► BACKOFF → SYNC
      └──error───► BACKOFF → SYNC

SYNC is a streaming WatchList when the server supports it (with a deadline for the
initial-events-end bookmark, after which it falls back and remembers), else a paginated LIST.
"""

from __future__ import annotations

import enum
import random
import threading
from collections.abc import Callable
from typing import Any, Final, final

import structlog

from pycontroller._util._backoff import Backoff
from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller._util._logging import log_exception
from pycontroller.cache._fifo import Queue
from pycontroller.cache._reflector_metrics import ReflectorMetrics
from pycontroller.cache._sync import list_pages, watch_list
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


class _State(enum.Enum):
    SYNC = "sync"
    WATCH = "watch"
    BACKOFF_SYNC = "backoff_sync"
    BACKOFF_WATCH = "backoff_watch"


class ShortWatchError(TransportError):
    """A watch closed within a second without delivering any event."""


def _rv(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


# How a watch that ended with an error goes on (first match wins): a stalled or broken
# stream re-watches from the last RV at once; throttling backs off and re-watches; 410,
# a bad line, an ERROR event or anything else backs off and relists.
_ON_WATCH_ERROR: Final[tuple[tuple[type[BaseException], str, _State], ...]] = (
    (ResourceExpiredError, "watch_expired", _State.BACKOFF_SYNC),
    (TooManyRequestsError, "watch_throttled", _State.BACKOFF_WATCH),
    (WatchStalledError, "watch_stalled", _State.WATCH),
    (WatchDecodeError, "watch_decode_failed", _State.BACKOFF_SYNC),
    (TransportError, "watch_broken", _State.WATCH),
    (BaseException, "watch_failed", _State.BACKOFF_SYNC),
)


@final
class Reflector:
    """Lists, then watches one resource and feeds every change into a FIFO.

    Guarantees: after each successful sync the FIFO holds a ``replace`` of the full state
    at some resourceVersion, followed by every later event in server order; watches resume
    from the last seen resourceVersion (bookmarks advance it); a 410 leads to a relist at
    the last seen version before falling back to a fresh consistent list, so a mass 410
    does not turn into a storm of full lists.

    Thread-safety: ``run`` is called once, on its own thread; ``last_sync_resource_version``
    may be read from any thread.
    """

    def __init__(
        self, lister_watcher: ListerWatcher, store: Queue[Any], *, name: str = "",
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
        self._watch_list = use_watch_list
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
        self._last_sync_rv = ""  # guarded by _lock
        self._rv_unavailable = False  # last LIST/WATCH at the last RV was expired/too large
        self._paginated_at_zero = False  # sticky: an RV=0 list came back paginated
        self._stream: EventStream | None = None  # guarded by _lock
        self._watching = threading.Event()
        self._synced_once = False

    @property
    def last_sync_resource_version(self) -> str:
        """The resourceVersion of the last list, event or bookmark applied ("" before)."""
        with self._lock:
            return self._last_sync_rv

    def _set_rv(self, rv: str) -> None:
        if rv:
            with self._lock:
                self._last_sync_rv = rv
            self._metrics.resource_version_advanced(rv, self._clock.now())

    # -- the loop ----------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; every error is logged, counted and retried."""
        helpers = [
            threading.Thread(target=self._close_on_stop, args=(stop,), daemon=True,
                             name=f"pycontroller-reflector-stop-{self.name}"),
        ]
        if self._resync_period > 0:
            helpers.append(threading.Thread(target=self._resync_loop, args=(stop,),
                                            daemon=True,
                                            name=f"pycontroller-resync-{self.name}"))
        for thread in helpers:
            thread.start()
        self._log.info("reflector_started")
        state, stream = _State.SYNC, None
        try:
            while not stop.is_set():
                state, stream = self._step(state, stream, stop)
        finally:
            self._watching.clear()
            if stream is not None:
                stream.close()
            stop.set()  # let helpers finish even if we died on an unexpected error
            for thread in helpers:
                thread.join()
            self._log.info("reflector_stopped")

    def _step(self, state: _State, stream: EventStream | None,
              stop: threading.Event) -> tuple[_State, EventStream | None]:
        if state in (_State.BACKOFF_SYNC, _State.BACKOFF_WATCH):
            delay = self._backoff.next()
            self._log.debug("backoff_sleep", seconds=round(delay, 3))
            self._clock.sleep(delay, stop)
            return (_State.SYNC if state is _State.BACKOFF_SYNC else _State.WATCH), None
        if state is _State.SYNC:
            try:
                return _State.WATCH, self._sync(stop)
            except Exception as exc:
                self._report("sync_failed", exc)
                return _State.BACKOFF_SYNC, None
        return self._watch(stream, stop)

    def _report(self, event: str, exc: BaseException) -> None:
        level = self._log.info if isinstance(exc, ResourceExpiredError) else self._log.warning
        level(event, error=str(exc), error_type=type(exc).__name__)
        self._metrics.watch_error()
        if self._on_watch_error is not None:
            try:
                self._on_watch_error(exc)
            except Exception:
                log_exception(self._log, "watch_error_handler_failed")

    # -- SYNC --------------------------------------------------------------------------
    def _sync(self, stop: threading.Event) -> EventStream | None:
        """Bring the store to the server's state; may return the WatchList stream to reuse."""
        if self._synced_once:
            self._metrics.relist()
        if self._watch_list:
            started = self._clock.now()
            result = watch_list(
                self._lw, rv="" if self._rv_unavailable else self.last_sync_resource_version,
                deadline=self._watch_list_deadline, inactivity=self._inactivity,
                timeout_seconds=self._watch_timeout(), clock=self._clock, stop=stop,
                log=self._log, kind=self._kind,
            )
            if result.unsupported:
                self._watch_list = False  # remembered for this server and reflector
            if result.stream is not None:
                self._rv_unavailable = False
                self._store.replace(result.items, result.resource_version)
                self._set_rv(result.resource_version)
                self._synced_once = True
                self._metrics.list_done(self._clock.now() - started, len(result.items))
                return result.stream
        self._list(stop)
        return None

    def _list(self, stop: threading.Event) -> None:
        rv = "" if self._rv_unavailable else (self.last_sync_resource_version or "0")
        started = self._clock.now()
        try:
            page = list_pages(self._lw, rv=rv, limit=self._limit_for(rv), stop=stop)
        except ResourceExpiredError as exc:  # also "too large resource version"
            self._log.info("list_expired", resource_version=rv, error=str(exc))
            self._rv_unavailable = True
            rv = ""
            page = list_pages(self._lw, rv=rv, limit=self._page_size, stop=stop)
        if stop.is_set():
            return
        if rv == "0" and page.paginated:
            self._paginated_at_zero = True
        self._rv_unavailable = False
        self._store.replace(page.items, page.resource_version)
        self._set_rv(page.resource_version)
        self._synced_once = True
        duration = self._clock.now() - started
        self._metrics.list_done(duration, len(page.items))
        self._log.info("list_completed", items=len(page.items), pages=page.pages,
                       resource_version=page.resource_version, seconds=round(duration, 3))

    def _limit_for(self, rv: str) -> int | None:
        if self._paginated_at_zero or rv in ("", "0"):
            return self._page_size
        return None  # exact RV: unpaginated so the watch cache can serve it

    # -- WATCH -------------------------------------------------------------------------
    def _watch_timeout(self) -> int:
        return int(self._min_watch_timeout * (1.0 + self._rand()))

    def _open(self, rv: str) -> tuple[_State, EventStream | None]:
        try:
            stream = self._lw.watch(
                resource_version=rv, timeout_seconds=self._watch_timeout(),
                send_initial_events=None, resource_version_match=None,
                inactivity_timeout=self._inactivity)
        except ResourceExpiredError as exc:
            self._report("watch_expired", exc)
            return _State.BACKOFF_SYNC, None
        except (TooManyRequestsError, TransportError) as exc:  # refused, throttled: no relist
            self._report("watch_open_failed", exc)
            return _State.BACKOFF_WATCH, None
        except Exception as exc:
            self._report("watch_open_failed", exc)
            return _State.BACKOFF_SYNC, None
        self._metrics.watch_started()
        self._log.debug("watch_started", resource_version=rv)
        return _State.WATCH, stream

    def _watch(self, stream: EventStream | None,
               stop: threading.Event) -> tuple[_State, EventStream | None]:
        started = self._clock.now()
        rv = self.last_sync_resource_version
        if stream is None:
            state, stream = self._open(rv)
            if stream is None:
                return state, None
        with self._lock:
            self._stream = stream
        self._watching.set()
        counter, after_error = [0], _State.WATCH
        try:
            self._consume(stream, rv, stop, counter)
        except Exception as exc:
            event, after_error = next((e, s) for t, e, s in _ON_WATCH_ERROR if isinstance(exc, t))
            if not stop.is_set():
                self._report(event, exc)
        finally:
            self._watching.clear()
            with self._lock:
                self._stream = None
            stream.close()
        duration, count = self._clock.now() - started, counter[0]
        self._metrics.watch_done(duration, count)
        if stop.is_set() or after_error is not _State.WATCH:
            return after_error, None
        if count == 0 and duration < SHORT_WATCH:
            self._metrics.short_watch()
            self._report("watch_too_short", ShortWatchError("watch closed at once"))
            return _State.BACKOFF_SYNC, None
        self._log.debug("watch_ended", events=count, seconds=round(duration, 3))
        return _State.WATCH, None

    def _consume(self, stream: EventStream, opened_at: str, stop: threading.Event,
                 counter: list[int]) -> None:
        """Apply events until the stream ends; ``counter[0]`` counts accepted events."""
        # A watch from "" or "0" starts with synthetic ADDEDs in no RV order: do not
        # advance the RV until the first non-ADDED event.
        propagate = opened_at not in ("", "0")
        for event in stream:
            if stop.is_set():
                break
            if event.type == "ERROR":
                raise api_error(200, event.object)
            if not self._accept(event):
                continue
            counter[0] += 1
            self._apply(event)
            if event.type != "ADDED":
                propagate = True
            if propagate:
                self._set_rv(_rv(event.object))

    def _accept(self, event: WatchEvent) -> bool:
        obj = event.object
        if not isinstance(obj.get("metadata"), dict):
            self._log.warning("watch_event_skipped", reason="no metadata", type=event.type)
            return False
        kind = obj.get("kind")
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

    # -- helpers threads ---------------------------------------------------------------
    def _close_on_stop(self, stop: threading.Event) -> None:
        stop.wait()
        with self._lock:
            stream = self._stream
        if stream is not None:
            stream.close()

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
