"""Controller: the base class users subclass (≙ sample-controller's Controller + runWorker).

Data flow: informer handlers (``on_add``/``on_update``/``on_delete``, by default "enqueue
the key") → ``RateLimitingQueue`` (keys only) → worker threads → ``reconcile(key)`` → reads
from ``self.lister``, writes through ``self.client``.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from pycontroller.cache._keys import DeletedFinalStateUnknown, meta_namespace_key
from pycontroller.cache._lister import Lister
from pycontroller.client._kube import Client
from pycontroller.client._resource import Resource
from pycontroller.controller._metrics import ControllerMetrics
from pycontroller.errors import ShutDownError
from pycontroller.workqueue import RateLimiter, RateLimitingQueue

_log = structlog.get_logger(__name__)
_STOP_POLL = 0.1  # seconds a worker waits for a key before it looks at its stop event again


@dataclass(frozen=True, slots=True)
class Requeue:
    """Returned by ``reconcile`` to process the key again.

    ``after=None`` requeues rate-limited (growing backoff); ``after=s`` requeues after
    ``s`` seconds and resets the key's failure history.
    """

    after: float | None = None


class Controller:
    """Base class: maps events on one resource to keys and keys to ``reconcile``.

    Subclass it in your project and set the class attributes::

        class PodLogger(Controller):
            resource = PODS

            def reconcile(self, key: str) -> Requeue | None:
                pod = self.lister.get_by_key(key)   # None: it was deleted
                ...

    Guarantees: one key is never reconciled by two workers at once; a key added while it
    is being reconciled is reconciled again afterwards; an exception from ``reconcile`` is
    logged (``reconcile_failed``, with key and traceback) and the key is retried with
    backoff; success forgets the key's failure history.

    Attributes set by the Manager before ``start``: ``client``, ``lister``, ``queue``.

    Thread-safety: hooks run on the informer's handler thread for this controller;
    ``reconcile`` runs on worker threads (concurrently for different keys). Keep shared
    state in your subclass thread-safe.
    """

    # Configuration: set in the subclass body, or on the instance before Manager.add().
    resource: Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    workers: int = 1
    resync_period: float | None = None
    #: a reconcile running longer than this makes /healthz fail (0: never).
    stuck_after: float = 600.0

    def __init__(self, *, name: str | None = None) -> None:
        if not isinstance(getattr(type(self), "resource", None), Resource):
            raise TypeError(f"{type(self).__name__} must set the class attribute 'resource'")
        self.name = name or type(self).__name__.lower()
        self.log = _log.bind(controller=self.name)
        self._client: Client | None = None
        self._lister: Lister[Mapping[str, Any]] | None = None
        self._queue: RateLimitingQueue[str] | None = None
        self._metrics = ControllerMetrics(None, self.name)
        self._threads: list[threading.Thread] = []
        self._busy: dict[str, float] = {}  # worker name -> monotonic start of its reconcile
        self._busy_lock = threading.Lock()
        self._stopping = threading.Event()

    # -- wiring (called by the Manager) ------------------------------------------------
    def rate_limiter(self) -> RateLimiter[str] | None:
        """Override to choose the retry rate limiter (default: client-go's default)."""
        return None

    def bind(self, *, client: Client, lister: Lister[Mapping[str, Any]],
             queue: RateLimitingQueue[str], metrics: ControllerMetrics) -> None:
        """Give the controller its client, cache view and queue (the Manager does this)."""
        self._client, self._lister, self._queue, self._metrics = client, lister, queue, metrics

    @property
    def client(self) -> Client:
        """The API client for writes."""
        if self._client is None:
            raise RuntimeError(f"controller {self.name} is not bound to a Manager yet")
        return self._client

    @property
    def lister(self) -> Lister[Mapping[str, Any]]:
        """Read-only view of the informer cache for ``resource``."""
        if self._lister is None:
            raise RuntimeError(f"controller {self.name} is not bound to a Manager yet")
        return self._lister

    @property
    def queue(self) -> RateLimitingQueue[str]:
        """The work queue of keys."""
        if self._queue is None:
            raise RuntimeError(f"controller {self.name} is not bound to a Manager yet")
        return self._queue

    # -- hooks (override as needed) ----------------------------------------------------
    def on_add(self, obj: Mapping[str, Any], is_in_initial_list: bool) -> None:
        """An object appeared (or was there at start). Default: enqueue its key."""
        self.enqueue(obj)

    def on_update(self, old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
        """An object changed (``old is new`` on resync). Default: enqueue its key."""
        self.enqueue(new)

    def on_delete(self, obj: Mapping[str, Any] | DeletedFinalStateUnknown[Any]) -> None:
        """An object is gone; may be a tombstone. Default: enqueue its key."""
        self.enqueue(obj)

    def enqueue(self, obj: Mapping[str, Any] | DeletedFinalStateUnknown[Any]) -> None:
        """Add the object's ``namespace/name`` key to the queue."""
        self.queue.add(meta_namespace_key(obj))

    def reconcile(self, key: str) -> Requeue | None:
        """Bring the world in line with the object at ``key``. Default: nothing.

        Read the object with ``self.lister.get_by_key(key)`` (None if it is gone).
        """
        return None

    # -- workers -----------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        """Start ``workers`` worker threads; they take no new key once ``stop`` is set.

        Setting ``stop`` has the effect of ``stop(grace_period=0)`` on the workers: a key
        already handed out is not reconciled, a running reconcile finishes, and each
        worker ends within ``_STOP_POLL`` seconds. The queue itself is shut down by
        ``stop()``.
        """
        for i in range(max(1, self.workers)):
            thread = threading.Thread(target=self._worker, args=(stop,), daemon=True,
                                      name=f"pycontroller-worker-{self.name}-{i}")
            self._threads.append(thread)
            thread.start()

    def stop(self, grace_period: float) -> bool:
        """Take no new keys, let running reconciles finish; True if all did in time."""
        self._stopping.set()
        self.queue.shut_down()
        deadline = time.monotonic() + grace_period
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def healthy(self) -> tuple[bool, str]:
        """Whether every worker is alive and none is stuck in one reconcile."""
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead and not self._stopping.is_set():
            return False, f"worker threads died: {', '.join(dead)}"
        if self.stuck_after > 0:
            now = time.monotonic()
            with self._busy_lock:
                stuck = [w for w, since in self._busy.items() if now - since > self.stuck_after]
            if stuck:
                return False, f"reconcile running > {self.stuck_after:.0f}s in {', '.join(stuck)}"
        return True, "ok"

    def _worker(self, stop: threading.Event) -> None:
        me = threading.current_thread().name
        queue = self.queue
        while not self._halted(stop):
            try:
                # Bounded wait: the caller's event has no way to wake a blocked get().
                key = queue.get(timeout=_STOP_POLL)
            except ShutDownError:
                return
            if key is None:
                continue
            if self._halted(stop):
                queue.done(key)
                return
            with self._busy_lock:
                self._busy[me] = time.monotonic()
            try:
                self._process(queue, key)
            finally:
                with self._busy_lock:
                    self._busy.pop(me, None)
                queue.done(key)

    def _halted(self, stop: threading.Event) -> bool:
        """Whether workers must stop taking keys: ``stop()`` was called or ``stop`` is set."""
        if stop.is_set():
            self._stopping.set()  # an intended exit: /healthz does not report dead workers
        return self._stopping.is_set()

    def _process(self, queue: RateLimitingQueue[str], key: str) -> None:
        started = time.monotonic()
        try:
            result = self.reconcile(key)
        except Exception as exc:
            self._metrics.reconciled("error", time.monotonic() - started)
            self.log.error("reconcile_failed", key=key, error=str(exc),
                           error_type=type(exc).__name__,
                           requeues=queue.num_requeues(key),
                           traceback="".join(traceback.format_exception(exc)))
            queue.add_rate_limited(key)
            return
        seconds = time.monotonic() - started
        if result is None:
            self._metrics.reconciled("success", seconds)
            queue.forget(key)
        elif result.after is None:
            self._metrics.reconciled("requeue", seconds)
            queue.add_rate_limited(key)
        else:
            self._metrics.reconciled("requeue_after", seconds)
            queue.forget(key)
            queue.add_after(key, result.after)
