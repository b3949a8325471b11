"""EventRecorder: ``events.k8s.io/v1`` Events with series and a per-object token bucket.

≙ client-go ``tools/events`` (series of isomorphic events) combined with the spam filter
of ``tools/record``'s EventCorrelator (per-object token bucket, burst 25, one token per
300 s, LRU of 4096 entries).

Data flow: ``normal``/``warning`` (any thread) validate, build a small immutable record
and append it to a bounded buffer under a lock held for O(1) — a full buffer drops and
counts; they never wait for the API server. One worker thread drains the buffer, folds
each record into the series cache, and writes what is due: a new Event is created at
once; repeats of the same (object, type, reason, action, note) within ``series_window``
only raise the cached ``series.count`` and are written as one PATCH of ``series`` at most
every ``series_interval`` seconds. Every write takes a token from the object's bucket;
a new Event without a token is dropped (counted), a series update without a token waits
for the next token, so its count is not lost.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, final

import structlog

from pycontroller import errors
from pycontroller._util._clock import REAL_CLOCK, Clock
from pycontroller._util._logging import log_exception
from pycontroller._util._paths import check_path_segment
from pycontroller.client._kube import Client
from pycontroller.client._resource import EVENTS_K8S_IO
from pycontroller.metrics._provider import Counter, EventsMetricsProvider, NoopMetricsProvider

__all__ = ["EventRecorder"]

_log = structlog.get_logger(__name__)

_QUALIFIED_NAME_PART = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_FIELD_LIMIT = 128  # reason, action, reportingInstance (apiserver validation)
_NOTE_LIMIT = 1024  # bytes
_MAX_TRIES = 12  # client-go maxTriesPerEvent
_RETRY_SLEEP = 10.0  # client-go defaultSleepDuration, jittered by 25 %
_DROP_REASONS = ("buffer_full", "rate_limited", "write_failed", "stopped")

EventType = Literal["Normal", "Warning"]


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _valid_qualified_name(value: str) -> bool:
    prefix, slash, local = value.rpartition("/")
    if slash and not (0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        return False
    return len(local) <= 63 and _QUALIFIED_NAME_PART.fullmatch(local) is not None


def _truncate_utf8(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore")


@dataclass(frozen=True, slots=True)
class _Observed:
    """One ``normal``/``warning`` call, as the caller made it."""

    regarding: tuple[tuple[str, str], ...]  # the ObjectReference, key-sorted
    type: EventType
    reason: str
    action: str
    note: str
    wall: datetime
    mono: float

    def key(self) -> tuple[Any, ...]:
        # resourceVersion is left out, so one series spans updates of the object.
        ref = tuple(kv for kv in self.regarding if kv[0] != "resourceVersion")
        return (ref, self.type, self.reason, self.action, self.note)

    def object_key(self) -> tuple[Any, ...]:
        ref = tuple(kv for kv in self.regarding if kv[0] != "resourceVersion")
        return (ref, self.type)


@dataclass(slots=True)
class _Series:
    """The cache entry for one isomorphic event (worker thread only)."""

    namespace: str
    name: str
    body: dict[str, Any]
    object_key: tuple[Any, ...]
    count: int = 1
    written: int = 0  # the count the server has; 0 = not created yet
    last_mono: float = 0.0
    last_wall: datetime = field(default_factory=lambda: datetime.now(UTC))
    due: float = 0.0
    tries: int = 0


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp: float


@final
class EventRecorder:
    """Posts ``events.k8s.io/v1`` Events about objects without blocking the caller.

    ``normal(obj, reason, message)`` and ``warning(...)`` record an Event regarding
    ``obj`` (which needs ``apiVersion``, ``kind`` and ``metadata.name``), reported by
    ``component`` (``reportingController``) from ``instance`` (``reportingInstance``,
    default ``<component>-<hostname>``). Repeats of the same object, type, reason, action
    and message within ``series_window`` seconds of the previous one update one Event's
    ``series`` (count, lastObservedTime) instead of creating Events. Per object (and
    type), writes are limited by a token bucket of ``burst`` tokens refilled one per
    ``refill_seconds``. At most ``buffer_size`` calls wait to be processed and
    ``cache_size`` series and buckets are kept (least recently used evicted). Dropped
    events are counted in ``event_recorder_dropped_events_total`` by reason.

    Calls made before ``start()`` are buffered; ``stop()`` processes the buffer, writes
    pending series updates the token buckets allow, and ends the worker thread.

    Thread-safety: ``normal``/``warning`` are thread-safe and never wait on I/O;
    ``start``/``stop`` are meant for one owner. Needs RBAC ``create`` and ``patch`` on
    ``events.k8s.io`` ``events``.
    """

    def __init__(self, client: Client, component: str, *, instance: str | None = None,
                 metrics: EventsMetricsProvider | None = None, clock: Clock | None = None,
                 buffer_size: int = 1000, cache_size: int = 4096, burst: int = 25,
                 refill_seconds: float = 300.0, series_window: float = 360.0,
                 series_interval: float = 1.0) -> None:
        if not _valid_qualified_name(component) or len(component) > _FIELD_LIMIT:
            raise ValueError(f"component {component!r} must be a qualified name such as "
                             "'website-controller' or 'example.com/website'")
        if instance is None:
            instance = f"{component}-{socket.gethostname()}"[:_FIELD_LIMIT]
        if not instance or len(instance) > _FIELD_LIMIT:
            raise ValueError("instance must be 1 to 128 characters")
        if min(buffer_size, cache_size, burst) < 1 or refill_seconds <= 0 \
                or series_window < 0 or series_interval < 0:
            raise ValueError("sizes and burst must be >= 1 and durations positive")
        self._client = client
        self.component = component
        self.instance = instance
        self._clock = clock or REAL_CLOCK
        self._buffer_size = buffer_size
        self._cache_size = cache_size
        self._burst = burst
        self._refill = refill_seconds
        self._window = series_window
        self._interval = series_interval
        provider: EventsMetricsProvider = metrics or NoopMetricsProvider()
        self._dropped: dict[str, Counter] = {
            r: provider.new_events_dropped_metric(component, r) for r in _DROP_REASONS}
        self._writes = {v: provider.new_event_writes_metric(component, v)
                        for v in ("create", "patch")}
        self._cond = threading.Condition(threading.Lock())
        self._buffer: deque[_Observed] = deque()  # guarded by _cond
        self._stopping = False  # guarded by _cond
        self._deadline = 0.0  # guarded by _cond; when stop() gives up waiting
        self._thread: threading.Thread | None = None
        # worker-thread state
        self._series: OrderedDict[tuple[Any, ...], _Series] = OrderedDict()
        self._dirty: dict[tuple[Any, ...], None] = {}  # keys whose count is not written
        self._buckets: OrderedDict[tuple[Any, ...], _Bucket] = OrderedDict()
        self._last_ns = 0

    # -- caller side -------------------------------------------------------------------
    def normal(self, obj: Mapping[str, Any], reason: str, message: str, *,
               action: str | None = None) -> None:
        """Record a ``Normal`` event about ``obj``; ``action`` defaults to ``reason``.

        Raises:
            ValueError: ``obj`` lacks apiVersion, kind or name, its namespace cannot be a
                URL path segment, or ``reason``/``action`` is empty or longer than 128
                characters. The message is cut to 1024 bytes.
            TypeError: ``reason``, ``action`` or ``message`` is not a ``str`` (pass
                ``str(exc)``, not the exception).
        """
        self._record(obj, "Normal", reason, message, action)

    def warning(self, obj: Mapping[str, Any], reason: str, message: str, *,
                action: str | None = None) -> None:
        """Record a ``Warning`` event about ``obj`` (see ``normal``)."""
        self._record(obj, "Warning", reason, message, action)

    def _record(self, obj: Mapping[str, Any], type: EventType, reason: str, message: str,
                action: str | None) -> None:
        action = reason if action is None else action
        for label, value in (("reason", reason), ("action", action), ("message", message)):
            if not isinstance(value, str):
                raise TypeError(f"event {label} must be a str, not {value.__class__.__name__}")
        for label, value in (("reason", reason), ("action", action)):
            if not value or len(value) > _FIELD_LIMIT:
                raise ValueError(f"event {label} must be 1 to 128 characters")
        meta = obj.get("metadata") or {}
        ref = {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
               "name": meta.get("name"), "namespace": meta.get("namespace"),
               "uid": meta.get("uid"), "resourceVersion": meta.get("resourceVersion")}
        if not (ref["apiVersion"] and ref["kind"] and ref["name"]):
            raise ValueError("an event needs an object with apiVersion, kind and "
                             "metadata.name")
        if ref["namespace"]:  # the Event is written to a URL under this namespace
            check_path_segment("namespace", ref["namespace"])
        observed = _Observed(
            regarding=tuple(sorted((k, str(v)) for k, v in ref.items() if v)),
            type=type, reason=reason, action=action,
            note=_truncate_utf8(message, _NOTE_LIMIT),
            wall=datetime.now(UTC), mono=self._clock.now())
        with self._cond:
            if self._stopping:
                reason_dropped = "stopped"
            elif len(self._buffer) >= self._buffer_size:
                reason_dropped = "buffer_full"
            else:
                self._buffer.append(observed)
                self._cond.notify()
                return
        self._dropped[reason_dropped].inc()

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker thread (once).

        Raises:
            RuntimeError: already started, or stopped.
        """
        with self._cond:
            if self._thread is not None or self._stopping:
                raise RuntimeError("EventRecorder can be started once")
            self._thread = threading.Thread(
                target=self._run, name=f"pycontroller-events-{self.component}",
                daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0, *, wait: bool = True) -> None:
        """Process what is buffered, write due series updates, end the worker (idempotent).

        The worker gives up writing ``timeout`` seconds after the first call; later calls
        to ``normal``/``warning`` are dropped (counted as ``stopped``). ``wait=False``
        returns at once (stop several recorders, then ``stop`` each again to wait on one
        shared deadline); otherwise this waits at most ``timeout`` seconds.
        """
        with self._cond:
            if not self._stopping:
                self._stopping = True
                self._deadline = self._clock.now() + timeout
            self._cond.notify_all()
            thread = self._thread
            unsent = 0 if thread is not None else len(self._buffer)
            if thread is None:
                self._buffer.clear()
        if unsent:
            self._dropped["stopped"].inc(unsent)
        if thread is not None and wait:
            thread.join(timeout)
            if thread.is_alive():
                _log.warning("event_recorder_stop_timeout", component=self.component,
                             timeout=timeout)

    # -- worker ------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._buffer and not self._stopping:
                    due = self._next_due()
                    now = self._clock.now()
                    if due is not None and due <= now:
                        break
                    self._clock.wait(self._cond, None if due is None else due - now)
                batch = list(self._buffer)
                self._buffer.clear()
                stopping, deadline = self._stopping, self._deadline
            try:
                for observed in batch:
                    self._observe(observed)
                    self._write_due(final=False, deadline=deadline)
                self._write_due(final=stopping, deadline=deadline)
            except Exception:  # a bug must not kill the worker and silence all events
                log_exception(_log, "event_recorder_failed", component=self.component)
            if stopping:
                with self._cond:
                    if not self._buffer:
                        return

    def _next_due(self) -> float | None:
        return min((self._series[k].due for k in self._dirty), default=None)

    def _observe(self, o: _Observed) -> None:
        key = o.key()
        series = self._series.get(key)
        if series is not None and o.mono - series.last_mono <= self._window:
            series.count += 1
            series.last_mono, series.last_wall = o.mono, o.wall
            self._series.move_to_end(key)
            self._dirty[key] = None
            return
        namespace = dict(o.regarding).get("namespace") or "default"
        name = self._event_name(dict(o.regarding)["name"], o.wall)
        body = {
            "apiVersion": EVENTS_K8S_IO.api_version, "kind": EVENTS_K8S_IO.kind,
            "metadata": {"name": name, "namespace": namespace},
            "eventTime": _micro_time(o.wall), "type": o.type, "reason": o.reason,
            "action": o.action, "note": o.note, "regarding": dict(o.regarding),
            "reportingController": self.component, "reportingInstance": self.instance,
        }
        self._series[key] = _Series(namespace, name, body, o.object_key(),
                                    last_mono=o.mono, last_wall=o.wall, due=o.mono)
        self._series.move_to_end(key)
        self._dirty[key] = None
        while len(self._series) > self._cache_size:
            # the least recently observed; if its count is not written yet, it is lost
            evicted, _ = self._series.popitem(last=False)
            self._dirty.pop(evicted, None)

    def _event_name(self, object_name: str, wall: datetime) -> str:
        # client-go: "<name>.<unix nanoseconds in hex>", unique within this process.
        stamp = max(int(wall.timestamp() * 1e9), self._last_ns + 1)
        self._last_ns = stamp
        name = f"{object_name}.{stamp:x}"
        if len(name) > 253 or not _DNS_SUBDOMAIN.fullmatch(name):
            name = str(uuid.uuid4())
        return name

    def _take_token(self, object_key: tuple[Any, ...], now: float) -> float:
        """Take a token; return 0 on success, else the seconds until one is available."""
        bucket = self._buckets.get(object_key)
        if bucket is None:
            bucket = self._buckets[object_key] = _Bucket(float(self._burst), now)
            while len(self._buckets) > self._cache_size:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(object_key)
            bucket.tokens = min(float(self._burst),
                                bucket.tokens + (now - bucket.stamp) / self._refill)
            bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) * self._refill

    def _write_due(self, *, final: bool, deadline: float) -> None:
        now = self._clock.now()
        for key in list(self._dirty):
            series = self._series[key]
            if series.due > now and not final:
                continue
            if final and self._clock.now() > deadline:
                return
            wait = self._take_token(series.object_key, now)
            if wait:
                if series.written == 0:  # a new event over the limit is dropped
                    self._forget(key)
                    self._dropped["rate_limited"].inc()
                else:  # a series update waits for the next token
                    series.due = now + wait
                continue
            self._write(key, series, now)

    def _write(self, key: tuple[Any, ...], series: _Series, now: float) -> None:
        count = series.count
        body = series.body
        if count > 1:
            body = {**body, "series": {"count": count,
                                       "lastObservedTime": _micro_time(series.last_wall)}}
        client = self._client
        try:
            if series.written:
                self._writes["patch"].inc()
                try:
                    client.patch(EVENTS_K8S_IO, series.name, {"series": body["series"]},
                                 series.namespace)
                except errors.NotFoundError:  # expired (TTL) or deleted: create it again
                    series.written = 0
            if not series.written:
                self._writes["create"].inc()
                try:
                    client.create(EVENTS_K8S_IO, body, series.namespace)
                except errors.ConflictError:
                    # AlreadyExists: an earlier attempt reached the server; patch next.
                    if count > 1:
                        series.written, series.due = 1, now
                        return
        except (errors.TransportError, errors.ServerError, errors.TooManyRequestsError) as exc:
            series.tries += 1
            if series.tries >= _MAX_TRIES:
                self._give_up(key, exc)
                return
            delay = _RETRY_SLEEP * (1.0 + 0.25 * random.random())
            if isinstance(exc, errors.TooManyRequestsError) and exc.retry_after:
                delay = max(delay, exc.retry_after)
            series.due = now + delay
            return
        except (errors.APIError, ValueError) as exc:  # rejected: retrying would not help
            self._give_up(key, exc)
            return
        series.written, series.tries = count, 0
        series.due = now + self._interval
        if series.written == series.count:
            self._dirty.pop(key, None)

    def _forget(self, key: tuple[Any, ...]) -> None:
        self._series.pop(key, None)
        self._dirty.pop(key, None)

    def _give_up(self, key: tuple[Any, ...], exc: Exception) -> None:
        self._forget(key)
        self._dropped["write_failed"].inc()
        _log.warning("event_write_failed", component=self.component, error=str(exc),
                     error_type=type(exc).__name__)

    def __repr__(self) -> str:
        return f"EventRecorder(component={self.component!r}, instance={self.instance!r})"
