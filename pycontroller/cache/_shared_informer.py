"""SharedIndexInformer: one cache per resource, shared by many handlers (≙ shared_informer.go).

Data flow: Reflector → RealFIFO (``pop_batch``) → **informer** (``_process``: apply each
delta of the batch to the indexer, in order, then push each handler's notifications of the
batch to its buffer) → handler threads.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, final

import structlog

from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller._util._logging import exception_fields, log_exception
from pycontroller.cache._fifo import Delta, DeltaType
from pycontroller.cache._index import NAMESPACE_INDEX, IndexFunc, meta_namespace_index_func
from pycontroller.cache._keys import DeletedFinalStateUnknown
from pycontroller.cache._lister import Lister
from pycontroller.cache._mutation_detector import CacheMutationDetector
from pycontroller.cache._processor import (
    _ADD,
    _DELETE,
    _UPDATE,
    MIN_RESYNC,
    Notification,
    Obj,
    OnAdd,
    OnDelete,
    OnUpdate,
    Registration,
    _Listener,
    resync_period_for,
)
from pycontroller.cache._real_fifo import RealFIFO
from pycontroller.cache._reflector import Reflector
from pycontroller.cache._reflector_metrics import ReflectorMetrics, ReflectorMetricsProvider
from pycontroller.cache._thread_safe_store import ThreadSafeStore
from pycontroller.client._list_watch import ListerWatcher
from pycontroller.errors import ShutDownError

_log = structlog.get_logger(__name__)
HANDLER_STOP_GRACE: Final = 5.0
"""Seconds a stopping informer waits, in all, for its handlers' running calls to return."""
Transform = Callable[[dict[str, Any]], dict[str, Any]]


def strip_managed_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The default transform: drop ``metadata.managedFields`` (often half of an object)."""
    # dict.get: a LazyObject's metadata is never left raw when it is an object.
    meta = dict.get(obj, "metadata") if isinstance(obj, dict) else obj.get("metadata")
    if isinstance(meta, dict) and "managedFields" in meta:
        del meta["managedFields"]  # not pop: a LazyObject would decode them first
    return obj


def _rv(obj: Obj | DeletedFinalStateUnknown[Obj] | None) -> str | None:
    if obj is None or isinstance(obj, DeletedFinalStateUnknown):
        return None
    meta = dict.get(obj, "metadata") if isinstance(obj, dict) else obj.get("metadata")
    if isinstance(meta, dict):
        return dict.get(meta, "resourceVersion")
    # a transform may leave metadata any Mapping (keys and indexes accept one)
    return meta.get("resourceVersion") if isinstance(meta, Mapping) else None


@final
class SharedIndexInformer:
    """Lists and watches one resource into an indexed cache and notifies handlers.

    Contract (as client-go's): the cache is updated before handlers hear of a change, so a
    handler may see a cache newer than its notification; each handler gets every add,
    update and delete in order, on its own thread (a slow or failing handler delays and
    breaks nobody else; failures are logged as ``handler_failed``); ``on_delete`` may
    receive a ``DeletedFinalStateUnknown`` when a delete happened while the watch was down;
    after a relist, an unchanged object (same resourceVersion) is an ``on_update(old, new)``
    for every handler while the informer has no resync, and for the handlers whose resync
    is due otherwise (client-go's rule); cached objects are shared and must not be mutated
    (the mutation detector checks, always on under the pytest plugin). Objects pass
    ``transform`` (default: drop managedFields) once, before they are cached. One object
    that cannot be applied (a failing index function, a key error) is logged and counted
    and never costs the others of its list (see ``ThreadSafeStore``).

    Stopping: ``run`` returns promptly once its stop event is set. It never sets that event
    itself: if the informer dies on an unexpected error it stops alone, logs
    ``informer_failed`` with the cause, keeps the error in :attr:`failure` and calls
    ``on_failure``.

    Thread-safety: thread-safe. ``run`` is called once; a stopped informer never restarts.
    """

    def __init__(
        self, lister_watcher: ListerWatcher, *, name: str = "", expected_kind: str | None = None,
        resync_period: float = 0.0, indexers: Mapping[str, IndexFunc[Obj]] | None = None,
        transform: Transform | None = strip_managed_fields, clock: Clock = REAL_CLOCK,
        metrics: ReflectorMetricsProvider | None = None, use_watch_list: bool = True,
        inactivity_timeout: float = 100.0,
        on_watch_error: Callable[[BaseException], None] | None = None,
        reflector_options: Mapping[str, Any] | None = None,
        on_failure: Callable[[SharedIndexInformer, BaseException], None] | None = None,
    ) -> None:
        self.name = name or lister_watcher.description
        self._lw = lister_watcher
        self._kind = expected_kind
        self._clock = clock
        self._default_resync = max(resync_period, MIN_RESYNC) if resync_period > 0 else 0.0
        self._check_period = self._default_resync
        self._indexer: ThreadSafeStore[Obj] = ThreadSafeStore(
            indexers={NAMESPACE_INDEX: meta_namespace_index_func, **(indexers or {})})
        self._transform = transform
        self._fifo: RealFIFO[Obj] = RealFIFO(known_objects=self._indexer,
                                             transform=transform)  # type: ignore[arg-type]
        self._metrics_provider = metrics
        self._use_watch_list = use_watch_list
        self._inactivity = inactivity_timeout
        self._on_watch_error = on_watch_error
        self._reflector_options = dict(reflector_options or {})
        self._on_failure = on_failure
        # Reports (log + detected_mutations()) but never kills the informer thread.
        self._detector = CacheMutationDetector(name=self.name, clock=clock,
                                               raise_on_mutation=False)
        self._log = _log.bind(component="informer", informer=self.name)
        # _block_deltas serialises delta processing with handler registration, so a handler
        # added after start sees its synthetic adds before any later change.
        self._block_deltas = threading.RLock()
        self._listeners: list[_Listener] = []  # guarded by _block_deltas
        self._handler_seq = 0  # guarded by _block_deltas
        self._state_lock = threading.Lock()
        self._started = False  # guarded by _state_lock
        self._stopped = False  # guarded by _state_lock
        self._synced = threading.Event()
        # Set when the caller's stop event is set, by _halt(), or when the informer dies:
        # what every thread of this informer stops on (the caller's event is never set).
        self._halted = threading.Event()
        self._failure: BaseException | None = None  # guarded by _state_lock
        self._reflector: Reflector | None = None
        self._thread: threading.Thread | None = None

    # -- configuration -----------------------------------------------------------------
    def _require_not_started(self, what: str) -> None:
        with self._state_lock:
            if self._started:
                raise RuntimeError(f"{what}: informer {self.name} has already started")

    def set_transform(self, transform: Transform | None) -> None:
        """Replace the transform. Raises RuntimeError after start."""
        self._require_not_started("set_transform")
        self._transform = transform
        self._fifo = RealFIFO(known_objects=self._indexer,
                              transform=transform)  # type: ignore[arg-type]

    def set_watch_error_handler(self, handler: Callable[[BaseException], None]) -> None:
        """Call ``handler`` with every list/watch error. Raises RuntimeError after start."""
        self._require_not_started("set_watch_error_handler")
        self._on_watch_error = handler

    def add_indexers(self, indexers: Mapping[str, IndexFunc[Obj]]) -> None:
        """Add indexes (also after start; they cover existing objects).

        Raises:
            ValueError: an index of that name exists.
        """
        self._indexer.add_indexers(indexers)

    # -- handlers ----------------------------------------------------------------------
    def add_event_handler(
        self, *, on_add: OnAdd | None = None, on_update: OnUpdate | None = None,
        on_delete: OnDelete | None = None, resync_period: float | None = None,
    ) -> Registration:
        """Register a handler; returns its handle (see ``Registration.has_synced``).

        ``resync_period`` (default: the informer's) replays the cache to this handler as
        ``on_update(obj, obj)``; 0 disables it; positive values are raised to at least 1 s.
        As in client-go, an informer created with resync 0 never resyncs (the handler's
        period is then 0, with a warning); before start a shorter period lowers the
        informer's check period, after start it is raised to it.

        Raises:
            ShutDownError: the informer was stopped.
        """
        requested = self._default_resync if resync_period is None else resync_period
        if requested > 0:
            requested = max(requested, MIN_RESYNC)
        # Lock order everywhere: _block_deltas, then _state_lock.
        with self._block_deltas:
            with self._state_lock:
                if self._stopped:
                    raise ShutDownError(f"informer {self.name} is stopped")
                started = self._started
                requested = self._adjust_check_period_locked(requested, started)
            period = resync_period_for(requested, self._check_period)
            if requested > 0 and period == 0:
                self._log.warning("handler_resync_disabled", reason="informer has no resync",
                                  requested=requested)
            self._handler_seq += 1
            listener = _Listener(f"pycontroller-handler-{self.name}-{self._handler_seq}",
                                 on_add=on_add, on_update=on_update, on_delete=on_delete,
                                 requested_resync=requested, resync_period=period,
                                 clock=self._clock)
            self._listeners.append(listener)
            if self._metrics_provider is not None:
                gauge = self._metrics_provider.new_pending_notifications_metric(listener.name)
                ref = weakref.ref(listener)
                gauge.set_function(lambda: float(x.pending()) if (x := ref()) else 0.0)
            if started:  # replay the cache as initial adds, then live events follow
                listener.push_all([(_ADD, obj, True) for obj in self._indexer.list()], True)
                listener.start()
        self._log.debug("handler_added", handler=listener.name, resync_period=period)
        return Registration(listener, self.has_synced)

    def _adjust_check_period_locked(self, requested: float, started: bool) -> float:
        """client-go's rule: a period below the check period lowers it before start (and
        every handler's period follows), or is raised to it after start. A check period of
        0 (no resync) is never changed."""
        if 0 < requested < self._check_period:
            if started:
                return self._check_period
            self._check_period = requested
            for listener in self._listeners:
                listener.resync_period = resync_period_for(listener.requested_resync,
                                                           requested)
        return requested

    def remove_event_handler(self, registration: Registration) -> None:
        """Stop deliveries to a handler. Idempotent; returns before a running call ends."""
        listener = registration._listener  # our own handle type
        with self._block_deltas:
            if listener in self._listeners:
                self._listeners.remove(listener)
                self._remove_pending_metric(listener.name)
        listener.stop()

    def _remove_pending_metric(self, name: str) -> None:
        """Drop a removed handler's gauge series (names are never reused)."""
        remove = getattr(self._metrics_provider, "remove_pending_notifications_metric", None)
        if remove is None:
            if self._metrics_provider is not None:
                self._log.debug("handler_metric_kept", handler=name,
                                reason="provider cannot remove series")
            return
        try:
            remove(name)
        except Exception as exc:  # a user's provider must not break handler removal
            self._log.warning("handler_metric_remove_failed", handler=name, error=str(exc),
                              error_type=type(exc).__name__)

    # -- reads -------------------------------------------------------------------------
    def has_synced(self) -> bool:
        """Whether the initial list has been applied to the cache."""
        if not self._synced.is_set() and self._fifo.has_synced():
            self._on_synced()  # e.g. an empty initial list: nothing was popped
        return self._synced.is_set()

    @property
    def lister(self) -> Lister[Obj]:
        """A read-only view of the cache."""
        return Lister(self._indexer)

    @property
    def indexer(self) -> ThreadSafeStore[Obj]:
        """The indexed cache. Read from it; never write (only the informer writes)."""
        return self._indexer

    @property
    def failure(self) -> BaseException | None:
        """The unexpected error this informer died of, or None (also after a normal stop)."""
        with self._state_lock:
            return self._failure

    @property
    def last_resource_version(self) -> str:
        """The resourceVersion of the last list, event or bookmark applied ("" before)."""
        return self._reflector.last_resource_version if self._reflector else ""

    # -- running -----------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        """Run in a background thread (``pycontroller-informer-<name>``) until ``stop``."""
        thread = threading.Thread(target=self.run, args=(stop,), daemon=True,
                                  name=f"pycontroller-informer-{self.name}")
        self._thread = thread
        thread.start()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for a ``start``-ed informer to finish after its stop event was set.

        Returns False if it still runs (``timeout`` passed first), True otherwise (also when
        it was never started). Once it has finished, so have the threads it started (the
        reflector, its stop watcher, handlers that return within 5 s in all), except a LIST or watch
        request abandoned in flight, which ends at its own timeout.
        """
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _halt(self) -> None:
        """Stop this informer without touching its caller's stop event (factory shutdown)."""
        self._halted.set()

    def run(self, stop: threading.Event) -> None:
        """List, watch and process until ``stop`` is set, then stop every handler.

        Never sets ``stop`` (see the class docstring for failures).
        """
        with self._block_deltas, self._state_lock:
            if self._started or self._stopped:
                self._log.warning("informer_already_started")
                return
            self._started = True
            for listener in self._listeners:
                listener.start()
        # Ends with the caller's stop, or within half a second of a halt (factory shutdown,
        # failure) so no thread outlives the informer for long.
        halter = threading.Thread(target=self._halt_on, args=(stop,), daemon=True,
                                  name=f"pycontroller-informer-stop-{self.name}")
        halter.start()
        reflector_thread: threading.Thread | None = None
        try:
            reflector = Reflector(
                self._lw, self._fifo, name=self.name, expected_kind=self._kind,
                resync_period=self._check_period, should_resync=self._should_resync,
                use_watch_list=self._use_watch_list, inactivity_timeout=self._inactivity,
                clock=self._clock, on_watch_error=self._on_watch_error,
                metrics=ReflectorMetrics(self._metrics_provider, self.name),
                **self._reflector_options,
            )
            self._reflector = reflector
            reflector_thread = threading.Thread(target=self._run_reflector, daemon=True,
                                                name=f"pycontroller-reflector-{self.name}")
            reflector_thread.start()
            self._log.info("informer_started")
            self._pop_loop()
        except BaseException as exc:
            self._fail(exc)
        finally:
            self._halted.set()
            if reflector_thread is not None:
                reflector_thread.join()
            with self._block_deltas, self._state_lock:
                self._stopped = True
                listeners, self._listeners = list(self._listeners), []
            for listener in listeners:
                listener.stop()
            grace_ends = time.monotonic() + HANDLER_STOP_GRACE  # one grace for all of them
            for listener in listeners:
                listener.join(max(0.0, grace_ends - time.monotonic()))
            self._detector.check()  # what handlers did in the last period
            if stop.is_set():  # it has returned or is returning: join() then means all done
                halter.join()
            self._log.info("informer_stopped", failed=self.failure is not None)
        failure = self.failure
        if failure is not None and self._on_failure is not None:
            try:
                self._on_failure(self, failure)
            except Exception:
                log_exception(self._log, "informer_failure_handler_failed")

    def _halt_on(self, stop: threading.Event) -> None:
        while not stop.wait(0.5):  # wakes at once when stop is set
            if self._halted.is_set():
                return
        self._halted.set()

    def _fail(self, exc: BaseException) -> None:
        """Record the first unexpected error, log it with its cause, stop this informer."""
        with self._state_lock:
            if self._failure is None:
                self._failure = exc
        self._log.error("informer_failed", **exception_fields(exc))
        self._halted.set()

    def _run_reflector(self) -> None:
        try:
            assert self._reflector is not None
            self._reflector.run(self._halted)
        except BaseException as exc:
            if not self._halted.is_set():
                self._fail(exc)
        finally:
            self._fifo.close()

    def _pop_loop(self) -> None:
        while True:
            try:
                self._fifo.pop_batch(self._process)
            except ShutDownError:
                return
            except Exception:
                log_exception(self._log, "delta_processing_failed")
            if self._halted.is_set() and self._fifo.is_closed() and len(self._fifo) == 0:
                return
            self.has_synced()
            self._detector.maybe_check()

    def _on_synced(self) -> None:
        with self._state_lock:
            if self._synced.is_set():
                return
            self._synced.set()
        self._log.info("cache_synced", objects=len(self._indexer))

    def _should_resync(self) -> bool:
        now = self._clock.now()
        with self._block_deltas:
            due = [x.due_for_resync(now) for x in self._listeners]  # sets each .resyncing
            return any(due)

    def _process(self, deltas: Sequence[Delta[Obj]], is_in_initial_list: bool) -> None:
        with self._block_deltas:
            listeners = self._listeners
            # Each handler gets this batch's notifications in one push (one lock round).
            out: list[list[Notification]] = [[] for _ in listeners]
            for delta in deltas:
                try:
                    self._apply(delta, is_in_initial_list, listeners, out)
                except Exception:  # one bad object must not cost the rest of its list
                    log_exception(self._log, "delta_apply_failed", type=str(delta.type))
            for listener, notifications in zip(listeners, out, strict=True):
                if notifications:
                    listener.push_all(notifications, is_in_initial_list)

    def _apply(self, delta: Delta[Obj], is_in_initial_list: bool,
               listeners: list[_Listener], out: list[list[Notification]]) -> None:
        obj = delta.obj
        if delta.type is DeltaType.DELETED:
            self._indexer.delete(obj)
            for notifications in out:
                notifications.append((_DELETE, obj, None))
            return
        assert not isinstance(obj, DeletedFinalStateUnknown)
        if delta.type is DeltaType.RESYNC:  # the cached object itself, unless replaced since
            old = self._indexer.get(obj)
            if old is not obj:
                self._indexer.update(obj)
                self._detector.add_object(obj)
        else:  # a new object from the server: store it, learn what it replaced
            old = self._indexer.update(obj)
            self._detector.add_object(obj)
        if old is None:
            for notifications in out:
                notifications.append((_ADD, obj, is_in_initial_list))
            return
        is_resync = delta.type is DeltaType.RESYNC or (
            delta.type is DeltaType.REPLACED and _rv(old) == _rv(obj))
        for listener, notifications in zip(listeners, out, strict=True):
            if listener.resyncing or not is_resync:
                notifications.append((_UPDATE, old, obj))
