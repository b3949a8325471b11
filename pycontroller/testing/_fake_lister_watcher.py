"""An in-memory ListerWatcher for unit tests of reflectors and informers.

It keeps objects and a resourceVersion counter, serves LIST pages, and hands out watch
streams that the test feeds (``emit``), cuts (``close_watches``) or breaks (``emit`` an
exception).
Every request is recorded in ``calls`` so tests can assert what a reflector asked for.
"""

from __future__ import annotations

import copy
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, final

from pycontroller.client._watch import WatchEvent, WatchStalledError
from pycontroller.errors import Error

_CLOSE = object()


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded request: ``verb`` is "list" or "watch"; ``options`` its arguments."""

    verb: str
    options: dict[str, Any] = field(default_factory=dict)


@final
class FakeStream:
    """A watch stream fed by the fake. Thread-safe."""

    def __init__(self, inactivity_timeout: float = 100.0) -> None:
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.closed = False
        self.inactivity_timeout = inactivity_timeout

    def set_inactivity_timeout(self, seconds: float) -> None:
        """As a real stream: how long iteration may wait for the next item."""
        self.inactivity_timeout = seconds

    def put(self, item: WatchEvent | BaseException) -> None:
        """Deliver an event, or raise ``item`` in the reader."""
        self._queue.put(item)

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            try:
                item = self._queue.get(timeout=self.inactivity_timeout)
            except queue.Empty:
                raise WatchStalledError("fake stream silent") from None
            if item is _CLOSE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """End iteration."""
        if not self.closed:
            self.closed = True
            self._queue.put(_CLOSE)


@final
class FakeListerWatcher:
    """ListerWatcher over an in-memory set of objects of one kind, for informer unit tests.

    Test controls: ``upsert``/``remove`` change an object (new resourceVersion) and send
    ADDED/MODIFIED/DELETED to open watches; ``bookmark`` sends a BOOKMARK; ``emit`` sends a
    raw event, or an exception the reader raises; ``close_watches`` ends every stream as a
    server timeout would. ``list_errors``/``watch_errors`` are raised by the next LISTs /
    WATCH opens; ``page_size_cap`` caps LIST pages; ``watch_list`` chooses how a WatchList
    (``sendInitialEvents``) request is answered. ``calls`` records every request and
    ``wait_for_watches`` waits until a number of watches were opened.

    resourceVersions start at 101 and grow by one per change, shared by all objects.

    Thread-safety: thread-safe.
    """

    def __init__(self, kind: str = "Pod", api_version: str = "v1") -> None:
        self.kind, self.api_version = kind, api_version
        self._lock = threading.Lock()
        self._objects: dict[str, dict[str, Any]] = {}  # guarded by _lock
        self._rv = 100  # guarded by _lock
        self.calls: list[Call] = []  # guarded by _lock
        self.streams: list[FakeStream] = []  # guarded by _lock
        self.list_errors: list[BaseException] = []  # raised by the next LISTs, in order
        self.watch_errors: list[BaseException] = []  # raised by the next WATCH opens
        self.page_size_cap: int | None = None  # serve at most this many items per page
        # None: WatchList is rejected (400); True: served; False: accepted, no end bookmark
        self.watch_list: bool | None = None
        self.watch_opened = threading.Condition(self._lock)

    @property
    def description(self) -> str:
        """Name for logs."""
        return f"fake/{self.kind}"

    # -- test controls -----------------------------------------------------------------
    def _bump(self, obj: dict[str, Any]) -> dict[str, Any]:
        self._rv += 1
        obj = copy.deepcopy(obj)
        obj.setdefault("kind", self.kind)
        obj.setdefault("apiVersion", self.api_version)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        return obj

    @staticmethod
    def _key(obj: dict[str, Any]) -> str:
        meta = obj["metadata"]
        return f"{meta.get('namespace', '')}/{meta['name']}"

    def upsert(self, obj: dict[str, Any], *, emit: bool = True) -> dict[str, Any]:
        """Store ``obj`` with a new RV and (by default) send ADDED/MODIFIED to open watches."""
        with self._lock:
            stored = self._bump(obj)
            key = self._key(stored)
            kind = "MODIFIED" if key in self._objects else "ADDED"
            self._objects[key] = stored
            streams = list(self.streams) if emit else []
        for stream in streams:
            stream.put(WatchEvent(kind, copy.deepcopy(stored)))  # type: ignore[arg-type]
        return stored

    def remove(self, namespace: str, name: str, *, emit: bool = True) -> None:
        """Delete an object and (by default) send DELETED to open watches."""
        with self._lock:
            gone = self._objects.pop(f"{namespace}/{name}")
            gone = self._bump(gone)
            streams = list(self.streams) if emit else []
        for stream in streams:  # a copy each: informers transform what they receive
            stream.put(WatchEvent("DELETED", copy.deepcopy(gone)))

    def bookmark(self) -> str:
        """Advance the RV and send a BOOKMARK; return the RV."""
        with self._lock:
            self._rv += 1
            rv = str(self._rv)
            streams = list(self.streams)
        for stream in streams:
            stream.put(WatchEvent("BOOKMARK", {"kind": self.kind, "metadata":
                                              {"resourceVersion": rv}}))
        return rv

    def emit(self, event: WatchEvent | BaseException) -> None:
        """Send a raw event (or an exception) to every open watch."""
        with self._lock:
            streams = list(self.streams)
        for stream in streams:
            stream.put(event)

    def close_watches(self) -> None:
        """End every open watch as the server would on timeout."""
        with self._lock:
            streams, self.streams = self.streams, []
        for stream in streams:
            stream.close()

    def wait_for_watches(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``count`` watches were opened in total."""
        with self._lock:
            return self.watch_opened.wait_for(
                lambda: sum(c.verb == "watch" for c in self.calls) >= count, timeout)

    def objects(self) -> dict[str, dict[str, Any]]:
        """A copy of the stored objects by ``ns/name``."""
        with self._lock:
            return copy.deepcopy(self._objects)

    # -- ListerWatcher -----------------------------------------------------------------
    def list(self, *, resource_version: str | None, resource_version_match: str | None,
             limit: int | None, continue_token: str | None) -> dict[str, Any]:
        """Serve one page; ``continue`` tokens are offsets."""
        with self._lock:
            self.calls.append(Call("list", {
                "resource_version": resource_version, "limit": limit,
                "resource_version_match": resource_version_match,
                "continue_token": continue_token}))
            if self.list_errors:
                raise self.list_errors.pop(0)
            items = sorted(self._objects.values(), key=self._key)
            start = int(continue_token or 0)
            size = min(x for x in (limit, self.page_size_cap, len(items) - start + 1) if x)
            page = [copy.deepcopy(o) for o in items[start:start + size]]
            for item in page:  # as a real LIST: no kind/apiVersion per item
                item.pop("kind", None)
                item.pop("apiVersion", None)
            meta: dict[str, Any] = {"resourceVersion": str(self._rv)}
            if start + size < len(items):
                meta["continue"] = str(start + size)
            return {"kind": f"{self.kind}List", "apiVersion": self.api_version,
                    "metadata": meta, "items": page}

    def watch(self, *, resource_version: str | None, timeout_seconds: int,
              send_initial_events: bool | None, resource_version_match: str | None,
              inactivity_timeout: float) -> FakeStream:
        """Open a stream (or raise the next queued watch error)."""
        with self._lock:
            self.calls.append(Call("watch", {
                "resource_version": resource_version, "timeout_seconds": timeout_seconds,
                "send_initial_events": send_initial_events,
                "resource_version_match": resource_version_match}))
            self.watch_opened.notify_all()
            if self.watch_errors:
                raise self.watch_errors.pop(0)
            if send_initial_events and self.watch_list is None:
                raise _unsupported()
            stream = FakeStream(inactivity_timeout)
            if send_initial_events:
                for obj in sorted(self._objects.values(), key=self._key):
                    stream.put(WatchEvent("ADDED", copy.deepcopy(obj)))
                if self.watch_list:
                    stream.put(WatchEvent("BOOKMARK", {"kind": self.kind, "metadata": {
                        "resourceVersion": str(self._rv),
                        "annotations": {"k8s.io/initial-events-end": "true"}}}))
            self.streams.append(stream)
            return stream


def _unsupported() -> Error:
    from pycontroller.errors import BadRequestError  # noqa: PLC0415

    return BadRequestError(400, "BadRequest", "sendInitialEvents is not supported")
