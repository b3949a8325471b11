"""Watch events decoded from a newline-delimited JSON stream, as bytes arrive."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from pycontroller.client._lazy import loads_event
from pycontroller.errors import Error, TransportError

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
_TYPES = frozenset(("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"))


class WatchStalledError(TransportError):
    """A watch stream stayed silent (no bytes, not even bookmarks) past its deadline."""


class WatchDecodeError(Error):
    """A watch line was not a JSON watch event; the stream cannot be trusted any more."""


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event of a watch: its type and the object (a ``Status`` for ERROR)."""

    type: EventType
    object: dict[str, Any]


def decode_event(line: bytes) -> WatchEvent:
    """Decode one watch line.

    Raises:
        WatchDecodeError: malformed JSON, an unknown type, or no object.
    """
    try:
        raw = loads_event(line)  # the object as a LazyObject (see _lazy.py)
    except orjson.JSONDecodeError as exc:
        raise WatchDecodeError(f"malformed watch line: {line[:200]!r}") from exc
    if not isinstance(raw, dict):
        raise WatchDecodeError(f"watch line is not an object: {line[:200]!r}")
    kind, obj = raw.get("type"), raw.get("object")
    if kind not in _TYPES or not isinstance(obj, dict):
        raise WatchDecodeError(f"not a watch event: {line[:200]!r}")
    return WatchEvent(kind, obj)


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Yield complete lines from byte chunks as soon as each line is complete."""
    pending = b""
    for chunk in chunks:
        if not chunk:
            continue
        pending += chunk
        if b"\n" not in chunk:
            continue
        *lines, pending = pending.split(b"\n")
        for line in lines:
            if line.strip():
                yield line
    if pending.strip():
        yield pending


class WatchStream:
    """An open watch: iterate for events; ``close()`` (from any thread) ends it.

    Iteration ends when the server closes the stream. Errors from the transport surface
    as ``pycontroller.errors.TransportError``; a malformed line as ``WatchDecodeError``.

    Thread-safety: iterate from one thread; ``close`` may be called from another.
    """

    def __init__(self, chunks: Iterable[bytes], close: Callable[[], None],
                 set_timeout: Callable[[float], None] | None = None) -> None:
        self._lines = split_lines(chunks)
        self._close = close
        self._set_timeout = set_timeout
        self.closed = False

    def set_inactivity_timeout(self, seconds: float) -> None:
        """Change how long the stream may stay silent from now on (e.g. after WatchList)."""
        if self._set_timeout is not None:
            self._set_timeout(seconds)

    def __iter__(self) -> Iterator[WatchEvent]:
        return self

    def __next__(self) -> WatchEvent:
        return decode_event(next(self._lines))

    def close(self) -> None:
        """Abort the underlying connection; a blocked reader wakes with an error or EOF."""
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
