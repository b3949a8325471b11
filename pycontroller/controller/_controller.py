"""Controller: the base class users subclass (≙ controller-runtime's builder + reconcile loop).

Data flow: informer handlers of the primary resource (``on_add``/``on_update``/
``on_delete``: predicates, then "enqueue the key"), of owned resources (the controller
owner's key) and of other watches (``map_to``) → ``RateLimitingQueue`` (keys only) →
worker threads → :meth:`Controller.process` (wait for own writes, declared finalizer) →
``reconcile(key)`` → reads from the listers, writes through ``self.client``.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import structlog

from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller._util._selectors import field_selector_terms, label_selector_matcher
from pycontroller.cache._index import IndexFunc
from pycontroller.cache._keys import DeletedFinalStateUnknown, meta_namespace_key
from pycontroller.cache._lister import Lister
from pycontroller.client._kube import Client
from pycontroller.client._observe import Write
from pycontroller.client._resource import Resource
from pycontroller.controller._finalizer import handle_finalizer, validate_finalizer
from pycontroller.controller._metrics import ControllerMetrics
from pycontroller.controller._predicates import Predicate, PredicateLike, as_predicate
from pycontroller.controller._read_your_writes import ReadYourWrites
from pycontroller.controller._watches import Owns, Watch, owner_keys
from pycontroller.errors import Error, ShutDownError, TerminalError, TooManyRequestsError
from pycontroller.events import EventRecorder
from pycontroller.workqueue import RateLimiter, RateLimitingQueue

_log = structlog.get_logger(__name__)
Obj = Mapping[str, Any]
_STOP_POLL = 0.1  # seconds a worker waits for a key before it looks at its stop event again


@dataclass(frozen=True, slots=True)
class Requeue:
    """Returned by ``reconcile`` to process the key again.

    ``after=None`` requeues rate-limited (growing backoff); ``after=s`` requeues after
    ``s`` seconds and resets the key's failure history (``s <= 0``: at once).

    Raises:
        TypeError: ``after`` is neither None nor a number.
        ValueError: ``after`` is NaN.
    """

    after: float | None = None

    def __post_init__(self) -> None:
        after = self.after
        if after is None:
            return
        if isinstance(after, bool) or not isinstance(after, (int, float)):
            raise TypeError(f"Requeue(after=...) takes seconds or None, not {after!r}")
        if math.isnan(after):
            raise ValueError("Requeue(after=...) takes seconds or None, not NaN")


@dataclass(frozen=True, slots=True)
class Source:
    """One secondary informer a controller needs, and how its events become keys."""

    resource: Resource
    keys: Callable[[Obj], Iterable[str]]
    predicates: tuple[Predicate, ...]
    namespace: str | None
    label_selector: str | None = None
    field_selector: str | None = None


def _is_terminal(exc: BaseException) -> bool:
    """Whether ``exc`` is a ``TerminalError`` or was raised ``from`` one (Go's ``%w``).

    Only explicit causes count: an error raised while handling one is not terminal.
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, TerminalError):
            return True
        seen.add(id(cur))
        cur = cur.__cause__
    return False


Scope = tuple[str | None, str | None, str | None]
"""An informer's ``(namespace, label_selector, field_selector)``; ``None``: unrestricted."""


def _scope_check(resource: Resource, namespace: str | None, label_selector: str | None,
                 field_selector: str | None) -> Callable[[Any], bool]:
    """Whether a written object is inside an informer's scope (True when unsure).

    Field selectors are judged on ``metadata.name``/``metadata.namespace`` only; other
    fields only the server can evaluate, so they count as matching.
    """
    labels_match = label_selector_matcher(label_selector) if label_selector else None
    fields = [(k, op, v) for k, op, v in field_selector_terms(field_selector or "")
              if k in ("metadata.name", "metadata.namespace")]
    namespace = namespace if resource.namespaced else None

    def check(obj: Any) -> bool:
        meta = obj.get("metadata") if isinstance(obj, Mapping) else None
        if not isinstance(meta, Mapping):
            return True
        if namespace and meta.get("namespace") != namespace:
            return False
        if labels_match is not None and not labels_match(meta.get("labels") or {}):
            return False
        for key, op, value in fields:
            actual = meta.get(key.partition(".")[2]) or ""
            if (actual == value) != (op == "="):
                return False
        return True

    return check


def _retry_after(exc: BaseException) -> float | None:
    """The Retry-After of a 429 that ``exc`` is, or was raised from."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, TooManyRequestsError):
            return cur.retry_after
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return None


class Controller:
    """Base class: maps events to keys and keys to ``reconcile``.

    Subclass it and declare what it watches::

        class WebsiteController(Controller):
            resource = WEBSITES                               # the primary
            owns = (DEPLOYMENTS,)                             # children -> owner's key
            watches = (Watch(CONFIGMAPS, map_to=users_of),)   # anything else -> keys
            predicates = (generation_changed,)                # filter the primary's events
            indexers = {DEPLOYMENTS: {"by-image": image_index}}
            finalizer = "example.com/cleanup"                 # cleanup() before deletion

            def reconcile(self, key: str) -> Requeue | None:
                site = self.lister.get_by_key(key)            # None: it is gone
                ...

    Guarantees: one key is never reconciled by two workers at once; a key added while it
    is being reconciled is reconciled again afterwards; ``reconcile`` returning ``None``
    forgets the key's failure history, ``Requeue(after=s)`` runs it again later; an
    exception (any ``BaseException`` but ``KeyboardInterrupt``/``SystemExit``) or a
    result that is neither ``None`` nor a ``Requeue`` is logged (``reconcile_failed``) and
    retried with backoff (a 429 no sooner than its ``Retry-After``), the worker lives on;
    a ``TerminalError`` (or an error raised ``from`` one) is logged and counted, never
    retried.
    Inside ``reconcile`` (and ``cleanup``) ``self.log`` is bound to the key. With
    ``read_your_writes`` (default) a reconcile first waits, at most
    ``read_your_writes_timeout`` seconds, until the caches show every write the previous
    reconciles of the key made through ``self.client``.

    Attributes set by ``bind`` (the Manager calls it; tests may call it directly):
    ``client``, ``lister``/``lister_for``, ``queue``, ``events``. ``name`` (default: the
    class name, lower-cased) labels logs and metrics and is the reporting component of
    the controller's Events, so under a Manager it must be a Kubernetes qualified name.

    Thread-safety: hooks run on the informer's handler thread of this controller;
    ``reconcile`` runs on worker threads (concurrently for different keys). Keep shared
    state in your subclass thread-safe.
    """

    # Configuration: set in the subclass body, or on the instance before Manager.add().
    resource: Resource
    namespace: str | None = None
    label_selector: str | None = None
    field_selector: str | None = None
    #: child resources (or ``Owns(resource, predicates=...)``) whose controller
    #: ownerReference names a ``resource`` object.
    owns: tuple[Resource | Owns, ...] = ()
    #: other resources, mapped to keys by ``Watch.map_to``.
    watches: tuple[Watch, ...] = ()
    #: filters on the primary resource's events (a plain callable: ``where(fn)``).
    predicates: tuple[PredicateLike, ...] = ()
    #: ``{resource: {index name: obj -> index values}}`` for any watched resource.
    indexers: Mapping[Resource, Mapping[str, IndexFunc[Obj]]] = MappingProxyType({})
    #: added to live objects, removed after ``cleanup`` succeeded (None: no finalizer).
    finalizer: str | None = None
    workers: int = 1
    resync_period: float | None = None
    #: a reconcile running longer is logged and counted (0: no limit).
    reconcile_timeout: float = 0.0
    #: a reconcile running longer than this makes /healthz fail (0: never).
    stuck_after: float = 600.0
    #: wait for the cache to show this controller's own writes before a reconcile.
    read_your_writes: bool = True
    read_your_writes_timeout: float = 5.0

    def __init__(self, *, name: str | None = None) -> None:
        if not isinstance(getattr(type(self), "resource", None), Resource):
            raise TypeError(f"{type(self).__name__} must set the class attribute 'resource'")
        self.name = name or type(self).__name__.lower()
        self._log = _log.bind(controller=self.name)
        self._current: contextvars.ContextVar[tuple[str, Any] | None] = \
            contextvars.ContextVar(f"pycontroller-reconcile-{self.name}", default=None)
        self._client: Client | None = None
        self._listers: dict[Resource, Lister[Obj]] = {}
        self._queue: RateLimitingQueue[str] | None = None
        self._events: EventRecorder | None = None
        self._metrics = ControllerMetrics(None, self.name)
        self._clock: Clock = REAL_CLOCK
        self._ryow: ReadYourWrites | None = None
        self._in_scope: dict[Resource, Callable[[Any], bool]] = {}
        self._predicates: tuple[Predicate, ...] | None = None  # set by bind()
        self._threads: list[threading.Thread] = []
        # worker name -> [key, clock time its reconcile started, timeout reported]
        self._busy: dict[str, list[Any]] = {}  # guarded by _busy_lock
        self._busy_lock = threading.Lock()
        self._stopping = threading.Event()

    # -- wiring ------------------------------------------------------------------------
    def rate_limiter(self) -> RateLimiter[str] | None:
        """Override to choose the retry rate limiter (default: client-go's default)."""
        return None

    def bind(self, *, client: Client, listers: Mapping[Resource, Lister[Obj]],
             queue: RateLimitingQueue[str] | None = None,
             metrics: ControllerMetrics | None = None, events: EventRecorder | None = None,
             clock: Clock = REAL_CLOCK,
             scopes: Mapping[Resource, Scope] | None = None) -> None:
        """Give the controller its client, cache views, queue, metrics and event recorder.

        The Manager calls this. To unit-test a reconcile without a Manager, call it with a
        client and a lister per resource (``informer.lister``, or ``Lister(ThreadSafeStore())``
        filled by the test), then call ``reconcile(key)`` (your code only) or
        ``process(key)`` (with the declared finalizer and read-your-own-writes steps).
        ``listers`` must contain ``resource``. ``scopes`` gives, per resource, the
        ``(namespace, label_selector, field_selector)`` its lister's informer is limited
        to (the Manager passes them): a write outside it is never delivered to that cache,
        so read-your-own-writes does not wait for it.

        Raises:
            ValueError: no lister for ``resource``, ``finalizer`` is not a
                domain-prefixed name (``example.com/cleanup``), or a scope's selector is
                malformed.
        """
        if self.resource not in listers:
            raise ValueError(f"listers must contain the primary resource {self.resource}")
        if self.finalizer:
            validate_finalizer(self.finalizer)
        if self.read_your_writes and client is not None:
            client = client.with_write_observer(self._observe_write)
        self._in_scope = {res: _scope_check(res, *scope)
                          for res, scope in (scopes or {}).items()}
        self._client, self._listers, self._queue = client, dict(listers), queue
        self._events, self._clock = events, clock
        self._predicates = None
        self._primary_predicates()
        if metrics is not None:
            self._metrics = metrics
        self._ryow = None
        if self.read_your_writes:
            self._ryow = ReadYourWrites(
                cached=lambda res, key: self._listers[res].get_by_key(key),
                watched=lambda res: res in self._listers, clock=clock,
                timeout=self.read_your_writes_timeout, waits=self._metrics.ryow_waits,
                timeouts=self._metrics.ryow_timeouts)

    def _require(self, value: Any, what: str) -> Any:
        if value is None:
            raise RuntimeError(f"controller {self.name} has no {what}: call bind() "
                               "or add it to a Manager")
        return value

    @property
    def client(self) -> Client:
        """The API client for writes."""
        client: Client = self._require(self._client, "client")
        return client

    @property
    def lister(self) -> Lister[Obj]:
        """Read-only view of the cache of ``resource``."""
        return self.lister_for(self.resource)

    def lister_for(self, resource: Resource) -> Lister[Obj]:
        """Read-only view of the cache of any resource this controller watches.

        Raises:
            LookupError: ``resource`` is not the primary, owned or watched here.
        """
        self._require(self._listers or None, "listers")
        try:
            return self._listers[resource]
        except KeyError:
            raise LookupError(f"controller {self.name} does not watch {resource}; declare "
                              "it in 'owns' or 'watches'") from None

    @property
    def queue(self) -> RateLimitingQueue[str]:
        """The work queue of keys."""
        queue: RateLimitingQueue[str] = self._require(self._queue, "queue")
        return queue

    @property
    def events(self) -> EventRecorder:
        """The event recorder of this controller (reporting component: its name).

        ``self.events.normal(obj, reason, message)`` / ``.warning(...)`` never block; the
        Manager starts the recorder before the informers and stops it after the workers.
        """
        events: EventRecorder = self._require(self._events, "event recorder")
        return events

    @property
    def log(self) -> Any:
        """The controller's structlog logger; bound to ``key`` inside a reconcile."""
        current = self._current.get()
        return self._log if current is None else current[1]

    # -- declarations (read by the Manager) ---------------------------------------------
    def _bound(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """``fn`` bound to this instance if it is a function defined in the class body."""
        for cls in type(self).__mro__:
            if any(value is fn for value in vars(cls).values()):
                bound: Callable[..., Any] = fn.__get__(self, type(self))
                return bound
        return fn

    def _predicates_of(self, predicates: Iterable[PredicateLike]) -> tuple[Predicate, ...]:
        return tuple(as_predicate(p if isinstance(p, Predicate) else self._bound(p))
                     for p in predicates)

    def _primary_predicates(self) -> tuple[Predicate, ...]:
        """``predicates`` as ``Predicate`` objects (methods bound), computed once by bind."""
        if self._predicates is None:
            self._predicates = self._predicates_of(self.predicates)
        return self._predicates

    def _sources(self) -> list[Source]:
        """The secondary informers this controller declares (``owns``, ``watches``)."""
        found = []
        for owned in self.owns:
            child = owned if isinstance(owned, Owns) else Owns(owned)
            found.append(Source(child.resource, owner_keys(self.resource),
                                self._predicates_of(child.predicates),
                                child.namespace if child.namespace is not None
                                else self.namespace, child.label_selector))
        for watch in self.watches:
            preds = self._predicates_of(watch.predicates)
            found.append(Source(watch.resource, self._bound(watch.map_to), preds,
                                watch.namespace if watch.namespace is not None
                                else self.namespace, watch.label_selector,
                                watch.field_selector))
        return found

    # -- hooks (override as needed) ----------------------------------------------------
    def on_add(self, obj: Obj, is_in_initial_list: bool) -> None:
        """An object appeared (or was there at start). Default: predicates, then enqueue."""
        if all(p.create(obj) for p in self._primary_predicates()):
            self.enqueue(obj)

    def on_update(self, old: Obj, new: Obj) -> None:
        """An object changed (``old is new`` on resync). Default: predicates, then enqueue."""
        if all(p.update(old, new) for p in self._primary_predicates()):
            self.enqueue(new)

    def on_delete(self, obj: Obj | DeletedFinalStateUnknown[Any]) -> None:
        """An object is gone; may be a tombstone. Default: predicates, then enqueue."""
        if all(p.delete(obj) for p in self._primary_predicates()):
            self.enqueue(obj)

    def enqueue(self, obj: Obj | DeletedFinalStateUnknown[Any]) -> None:
        """Add the object's ``namespace/name`` key to the queue."""
        self.queue.add(meta_namespace_key(obj))

    def reconcile(self, key: str) -> Requeue | None:
        """Bring the world in line with the object at ``key``. Default: nothing.

        Read the object with ``self.lister.get_by_key(key)`` (None if it is gone).
        """
        return None

    def cleanup(self, obj: Obj) -> None:
        """Release what the object holds outside its own cascade (with ``finalizer`` set).

        Called while the object is being deleted; the finalizer is removed only after this
        returns. Raise to retry (with backoff). Default: nothing.
        """

    # -- one key -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _reconciling(self, key: str) -> Iterator[None]:
        token = self._current.set((key, self._log.bind(key=key)))
        try:
            yield
        finally:
            self._current.reset(token)

    def process(self, key: str) -> Requeue | None:
        """Run one key as a worker does, without the queue; returns ``reconcile``'s result.

        Steps: wait for this controller's own writes to reach the caches (if
        ``read_your_writes``); the declared ``finalizer`` (add it, or on deletion run
        ``cleanup`` and remove it, skipping ``reconcile``); after adding it, wait again
        until the cache shows it; ``reconcile(key)``. Exceptions propagate.

        Raises:
            ShutDownError: ``stop()`` was called while the step waited for the caches.
        """
        with self._reconciling(key):
            self._wait_for_own_writes(key)
            if self.finalizer:
                obj = self.lister.get_by_key(key)
                if obj is not None and handle_finalizer(
                        self.client, self.resource, self.finalizer, obj,
                        cleanup=self.cleanup, log=self.log):
                    return None
                self._wait_for_own_writes(key)  # the finalizer just added, if it was
            return self.reconcile(key)

    def _wait_for_own_writes(self, key: str) -> None:
        """Wait until the caches show the key's own writes (see ``ReadYourWrites.wait``).

        Raises:
            ShutDownError: ``stop()`` released the wait: the caches may still be older than
                those writes, so the reconcile must not run.
        """
        if self._ryow is None:
            return
        if not self._ryow.wait(key):
            self.log.warning("read_your_writes_timeout", timeout=self._ryow.timeout)
        if self._ryow.closed:
            raise ShutDownError(f"controller {self.name} is stopping; {key} is not "
                                "reconciled")

    def _observe_write(self, write: Write) -> None:
        """Record a write made through ``self.client`` (its write-observer hook).

        Only writes made inside a reconcile, to resources this controller watches, are
        recorded; a DELETE answered with a Status means the object is gone at once, and so
        does a write that leaves the informer's scope (other namespace, labels the
        selector does not select).
        """
        current = self._current.get()
        if current is None or self._ryow is None:
            return
        key = f"{write.namespace}/{write.name}" if write.namespace else write.name
        gone = write.verb == "delete" and write.resource_version is None
        in_scope = self._in_scope.get(write.resource)
        if not gone and in_scope is not None and not in_scope(write.obj):
            # Its event never reaches the cache; wait only until the cache drops the
            # version it holds (the watch reports an object leaving its scope as deleted).
            gone = True
        self._ryow.record(current[0], write.resource, None if gone else write.obj, key,
                          deleted=gone)

    def _observe_cached(self, resource: Resource, obj: Obj, deleted: bool) -> None:
        """The informer of ``resource`` delivered ``obj`` (the Manager's handlers call it)."""
        if self._ryow is not None:
            self._ryow.observe(resource, obj, deleted)

    # -- workers -----------------------------------------------------------------------
    def start(self, stop: threading.Event) -> None:
        """Start ``workers`` worker threads (and the timeout monitor, if configured).

        The workers take no new key once ``stop`` is set: that has the effect of
        ``stop(grace_period=0)`` on them (a key already handed out is not reconciled, a
        running reconcile finishes, each worker ends within ``_STOP_POLL`` seconds of the
        queue's clock). The queue itself is shut down by ``stop()``.
        """
        workers = max(1, self.workers)
        self._metrics.max_concurrent.set(workers)
        for i in range(workers):
            self._spawn(self._worker, f"pycontroller-worker-{self.name}-{i}", stop)
        if self.reconcile_timeout > 0:
            self._spawn(self._monitor, f"pycontroller-reconcile-monitor-{self.name}")

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name=name)
        self._threads.append(thread)
        thread.start()

    def stop(self, grace_period: float) -> bool:
        """Take no new keys, let running reconciles finish; True if all did in time.

        A key still waiting for its own writes to reach the caches is not reconciled.
        """
        self._stopping.set()
        if self._ryow is not None:
            self._ryow.close()
        self.queue.shut_down()
        deadline = self._clock.now() + grace_period
        for thread in self._threads:
            thread.join(max(0.0, deadline - self._clock.now()))
        return not any(t.is_alive() for t in self._threads)

    def _join_workers(self) -> None:
        """Wait, without a bound, until every worker thread has ended (after ``stop``)."""
        for thread in self._threads:
            thread.join()

    def healthy(self) -> tuple[bool, str]:
        """Whether every worker is alive and none is stuck in one reconcile."""
        dead = [t.name for t in self._threads if not t.is_alive()]
        if dead and not self._stopping.is_set():
            return False, f"worker threads died: {', '.join(dead)}"
        if self.stuck_after > 0:
            now = self._clock.now()
            with self._busy_lock:
                stuck = [w for w, (_, since, _) in self._busy.items()
                         if now - since > self.stuck_after]
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
            entry = [key, self._clock.now(), False]
            with self._busy_lock:
                self._busy[me] = entry
            self._metrics.active_workers.inc()
            try:
                self._handle(queue, key)
            finally:
                self._metrics.active_workers.dec()
                with self._busy_lock:
                    self._busy.pop(me, None)
                self._check_timeout(entry, self._clock.now())
                queue.done(key)

    def _halted(self, stop: threading.Event) -> bool:
        """Whether workers must stop taking keys: ``stop()`` was called or ``stop`` is set."""
        if stop.is_set():
            self._stopping.set()  # an intended exit: /healthz does not report dead workers
        return self._stopping.is_set()

    def _monitor(self) -> None:
        period = min(1.0, self.reconcile_timeout / 2)
        while not self._clock.sleep(period, self._stopping):
            now = self._clock.now()
            with self._busy_lock:
                entries = list(self._busy.values())
            for entry in entries:
                self._check_timeout(entry, now)

    def _check_timeout(self, entry: list[Any], now: float) -> None:
        limit = self.reconcile_timeout
        with self._busy_lock:
            if limit <= 0 or entry[2] or now - entry[1] <= limit:
                return
            entry[2] = True
        self._metrics.timeouts.inc()
        self._log.warning("reconcile_timeout", key=entry[0], timeout=limit,
                          running_seconds=round(now - entry[1], 3))

    def _handle(self, queue: RateLimitingQueue[str], key: str) -> None:
        started = self._clock.now()
        try:
            result = self.process(key)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # asyncio.CancelledError too: the worker lives on
            if isinstance(exc, ShutDownError) and self._stopping.is_set():
                self._log.info("reconcile_abandoned", key=key, reason=str(exc))
                return
            if _is_terminal(exc):
                self._metrics.reconciled("error", self._clock.now() - started)
                self._metrics.terminal_errors.inc()
                self._log.error("reconcile_terminal_error", key=key, error=str(exc),
                                traceback="".join(traceback.format_exception(exc)))
                queue.forget(key)
                return
            self._failed(queue, key, exc, self._clock.now() - started)
            return
        seconds = self._clock.now() - started
        if result is not None and not isinstance(result, Requeue):
            # Never the value itself in the message: it may be an object (a Secret).
            what = result.__name__ if isinstance(result, type) else type(result).__name__
            self._failed(queue, key, TypeError(
                f"reconcile must return None or Requeue(...), not {what}"), seconds)
            return
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

    def _failed(self, queue: RateLimitingQueue[str], key: str, exc: BaseException,
                seconds: float) -> None:
        self._metrics.reconciled("error", seconds)
        if not isinstance(exc, Error):
            self._metrics.panics.inc()
        retry_after = _retry_after(exc)
        self._log.error("reconcile_failed", key=key, error=str(exc),
                        error_type=type(exc).__name__, requeues=queue.num_requeues(key),
                        retry_after=retry_after,
                        traceback="".join(traceback.format_exception(exc)))
        if retry_after is None:
            queue.add_rate_limited(key)
        else:  # the rate limiter still counts the failure; Retry-After is the floor
            queue.add_after(key, max(retry_after, queue.rate_limiter.when(key)))
