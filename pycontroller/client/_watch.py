"""Watch events decoded from a newline-delimited JSON stream, as bytes arrive."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from pycontroller.client._lazy import EventDecoder, loads_event
from pycontroller.errors import Error, TransportError

EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"]
_TYPES = frozenset(("ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR"))
MAX_EVENT_BYTES = 16 * 1024 * 1024
"""The largest watch event (one line) accepted, as client-go's streaming decoder (16 MiB)."""


class WatchStalledError(TransportError):
    """A watch stream stayed silent (no bytes, not even bookmarks) past its deadline."""


class WatchDecodeError(Error):
    """A watch line was not a JSON watch event; the stream cannot be trusted any more."""


class WatchEventTooLargeError(WatchDecodeError):
    """One watch event grew past the size cap before its line ended; the stream is dropped.

    A reflector treats it like any undecodable line: it backs off and relists.
    """


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One event of a watch: its type and the object (a ``Status`` for ERROR)."""

    type: EventType
    object: dict[str, Any]


def decode_event(line: bytes, loads: Callable[[bytes], Any] = loads_event) -> WatchEvent:
    """Decode one watch line.

    Error messages give the line's length and the parser's complaint, never its bytes:
    the line may hold a Secret, and the message is logged.

    Raises:
        WatchDecodeError: malformed JSON, an unknown type, or no object.
    """
    try:
        raw = loads(line)  # the object as a LazyObject (see _lazy.py)
    except orjson.JSONDecodeError as exc:
        raise WatchDecodeError(f"malformed watch line ({len(line)} bytes): {exc}") from None
    if not isinstance(raw, dict):
        raise WatchDecodeError(
            f"watch line is a JSON {type(raw).__name__}, not an object ({len(line)} bytes)")
    kind, obj = raw.get("type"), raw.get("object")
    if kind not in _TYPES or not isinstance(obj, dict):
        plain = isinstance(kind, str) and kind.isascii() and kind.isupper() and len(kind) < 20
        shown = repr(kind) if plain else f"<{type(kind).__name__}>"
        raise WatchDecodeError(f"not a watch event: type {shown}, object "
                               f"{type(obj).__name__} ({len(line)} bytes)")
    return _event(kind, obj)


# WatchEvent(kind, obj) without the frozen dataclass's __init__ (object.__setattr__ per
# field): one event per watch line, so the constructor is on the hot path.
_new_event: Final = object.__new__
_set_type: Final = WatchEvent.__dict__["type"].__set__
_set_object: Final = WatchEvent.__dict__["object"].__set__


def _event(kind: EventType, obj: dict[str, Any]) -> WatchEvent:
    event: WatchEvent = _new_event(WatchEvent)
    _set_type(event, kind)
    _set_object(event, obj)
    return event


def split_lines(chunks: Iterable[bytes], max_line: int = MAX_EVENT_BYTES) -> Iterator[bytes]:
    """Yield complete lines from byte chunks as soon as each line is complete.

    Linear in the bytes received, however a line is cut into chunks: the pieces of an
    unfinished line are kept in a list and joined once, when its newline arrives.

    Raises:
        WatchEventTooLargeError: a line exceeded ``max_line`` bytes (checked as it grows,
            so at most ``max_line`` plus one chunk is ever held).
    """
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        start = 0
        while start < len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            size += len(piece)
            if size > max_line:
                raise WatchEventTooLargeError(
                    f"watch event larger than {max_line} bytes; dropping the stream")
            if end < 0:
                parts.append(piece)
                break
            line = b"".join((*parts, piece)) if parts else piece
            parts, size = [], 0
            if line and not line.isspace():
                yield line
            start = end + 1
    line = b"".join(parts)
    if line and not line.isspace():
        yield line


class ChunkedFramingError(TransportError):
    """The HTTP/1.1 chunked framing of a stream was malformed (a bad size line or delimiter)."""


_MAX_SIZE_LINE = 1024  # a chunk-size line with extensions; real ones are a few bytes
_HEX = b"0123456789abcdefABCDEF"


def dechunk(read: Callable[[], bytes]) -> Iterator[bytes]:
    """Yield the payload of an HTTP/1.1 chunked body, ``read()`` by ``read()``.

    ``read`` returns whatever bytes arrived (``b""`` at end of stream), e.g. a buffered
    reader's ``read1(n)``. Each call's payload is yielded as one ``bytes`` (chunk
    boundaries are not kept: a watch is newline-delimited), so a burst of events costs one
    read and one yield instead of several calls per chunk. Ends after the last (0-size)
    chunk; trailers are not read.

    Raises:
        ChunkedFramingError: a malformed size line or chunk delimiter.
        TransportError: the stream ended before its last chunk.
    """
    left = 0  # payload bytes still due in the current chunk
    crlf = 0  # delimiter bytes still due after it
    head = b""  # an incomplete size line carried over to the next read
    done = False
    while not done:
        data = read()
        if not data:
            raise TransportError("chunked stream ended before its last chunk")
        data, head = (head + data if head else data), b""
        pos, end, out = 0, len(data), []
        while pos < end:
            if left:
                take = min(left, end - pos)
                out.append(data[pos:pos + take] if take != end or pos else data)
                pos += take
                left -= take
                if not left:
                    crlf = 2
                continue
            if crlf:
                got = data[pos:pos + crlf]
                if got != b"\r\n"[2 - crlf:][:len(got)]:
                    raise ChunkedFramingError("chunk not followed by CRLF")
                pos += len(got)
                crlf -= len(got)
                continue
            nl = data.find(b"\r\n", pos, pos + _MAX_SIZE_LINE)
            if nl < 0:
                if end - pos >= _MAX_SIZE_LINE:
                    raise ChunkedFramingError("chunk size line too long")
                head = data[pos:]
                break
            left = _chunk_size(data[pos:nl])
            pos = nl + 2
            if not left:  # the last chunk
                done = True
                break
        if out:
            yield b"".join(out) if len(out) > 1 else out[0]


def _chunk_size(line: bytes) -> int:
    size = line.split(b";", 1)[0].strip(b" \t")  # chunk extensions are ignored
    if not size or len(size) > 15 or size.strip(_HEX):
        raise ChunkedFramingError("malformed chunk size line")
    return int(size, 16)


class WatchStream:
    """An open watch: iterate for events; ``close()`` (from any thread) ends it.

    Iteration ends when the server closes the stream. Errors from the transport surface
    as ``pycontroller.errors.TransportError``; a malformed line as ``WatchDecodeError``, an
    event longer than ``max_event_bytes`` as its subclass ``WatchEventTooLargeError``.

    Thread-safety: iterate from one thread; ``close`` may be called from another.
    """

    def __init__(self, chunks: Iterable[bytes], close: Callable[[], None],
                 set_timeout: Callable[[float], None] | None = None,
                 max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._lines = split_lines(chunks, max_event_bytes)
        self._loads = EventDecoder()
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
        return decode_event(next(self._lines), self._loads)

    def close(self) -> None:
        """Abort the underlying connection; a blocked reader wakes with an error or EOF."""
        if not self.closed:
            self.closed = True
            self._close()

    def __enter__(self) -> WatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
