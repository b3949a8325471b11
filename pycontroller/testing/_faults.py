"""A fault-injecting ListerWatcher wrapper around a real one (for reliability tests).

``down()`` cuts the current watch and refuses new ones (as a broken network would) until
``up()``; ``inject(x)`` makes the open watch raise or emit ``x`` next (a malformed line as
``WatchDecodeError``, an ERROR event as a ``WatchEvent``).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any, final

from pycontroller.client._list_watch import EventStream, ListerWatcher
from pycontroller.client._watch import WatchEvent
from pycontroller.errors import TransportError


@final
class _Stream:
    def __init__(self, inner: EventStream, owner: FaultyListerWatcher) -> None:
        self._inner = inner
        self._owner = owner
        self.injected: queue.SimpleQueue[WatchEvent | BaseException] = queue.SimpleQueue()

    def __iter__(self) -> Iterator[WatchEvent]:
        for event in self._inner:
            while not self.injected.empty():
                item = self.injected.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
            if self._owner.is_down():
                raise TransportError("connection reset (injected)")
            yield event

    def close(self) -> None:
        self._inner.close()


@final
class FaultyListerWatcher:
    """Wraps a ListerWatcher; faults are switched on and off by the test. Thread-safe."""

    def __init__(self, inner: ListerWatcher) -> None:
        self._inner = inner
        self._lock = threading.Lock()
        self._down = False  # guarded by _lock
        self._streams: list[_Stream] = []  # guarded by _lock
        self.watches = 0  # guarded by _lock
        self.lists = 0  # guarded by _lock

    @property
    def description(self) -> str:
        """The wrapped description."""
        return self._inner.description

    def is_down(self) -> bool:
        """Whether the simulated network is down."""
        with self._lock:
            return self._down

    def down(self) -> None:
        """Cut open watches and refuse new requests until ``up()``."""
        with self._lock:
            self._down = True
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.close()

    def up(self) -> None:
        """Let requests through again."""
        with self._lock:
            self._down = False

    def inject(self, item: WatchEvent | BaseException) -> None:
        """Deliver ``item`` on every open watch before its next real event."""
        with self._lock:
            streams = list(self._streams)
        for stream in streams:
            stream.injected.put(item)

    def list(self, **kwargs: Any) -> dict[str, Any]:
        """LIST through, unless down."""
        with self._lock:
            if self._down:
                raise TransportError("connection refused (injected)")
            self.lists += 1
        return self._inner.list(**kwargs)

    def watch(self, **kwargs: Any) -> _Stream:
        """WATCH through, unless down."""
        with self._lock:
            if self._down:
                raise TransportError("connection refused (injected)")
            self.watches += 1
        stream = _Stream(self._inner.watch(**kwargs), self)
        with self._lock:
            self._streams.append(stream)
        return stream
