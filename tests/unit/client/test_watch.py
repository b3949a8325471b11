from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontroller.client._watch import (
    WatchDecodeError,
    WatchEventTooLargeError,
    WatchStream,
    decode_event,
    split_lines,
)


def test_split_lines_yields_each_line_as_soon_as_complete() -> None:
    chunks = [b'{"a":', b'1}\n{"b"', b":2}\n\n", b'{"c":3}']
    assert list(split_lines(chunks)) == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


def test_split_lines_does_not_wait_for_more_chunks() -> None:
    def source() -> Iterator[bytes]:
        yield b'{"x":1}\n'
        raise AssertionError("read past the first complete line")

    assert next(split_lines(source())) == b'{"x":1}'


def test_decode_event() -> None:
    event = decode_event(b'{"type":"ADDED","object":{"kind":"Pod"}}')
    assert event.type == "ADDED" and event.object == {"kind": "Pod"}


@pytest.mark.parametrize("line", [
    b"{not json", b"[1,2]", b'{"type":"WHAT","object":{}}', b'{"type":"ADDED"}',
    b'{"type":"ADDED","object":"str"}',
])
def test_decode_event_rejects_malformed_lines(line: bytes) -> None:
    with pytest.raises(WatchDecodeError):
        decode_event(line)


@pytest.mark.parametrize("line", [
    b'{"type":"ADDED","object":{"kind":"Secret","data":{"pw":"aHVudGVyMg=="}}',  # truncated
    b'{"type":"aHVudGVyMg==","object":{"data":{"pw":"aHVudGVyMg=="}}}',
    b'["aHVudGVyMg=="]',
])
def test_decode_errors_do_not_echo_the_line(line: bytes) -> None:
    # The message is logged by the reflector; the line may be a Secret.
    with pytest.raises(WatchDecodeError) as info:
        decode_event(line)
    assert "aHVudGVyMg" not in str(info.value) and str(len(line)) in str(info.value)


def test_stream_close_is_idempotent() -> None:
    closed: list[int] = []
    stream = WatchStream(iter([b'{"type":"BOOKMARK","object":{}}\n']),
                         lambda: closed.append(1))
    with stream:
        assert [e.type for e in stream] == ["BOOKMARK"]
    stream.close()
    assert closed == [1]


def test_split_lines_is_linear_for_a_long_line_in_small_chunks() -> None:
    # 12 MiB in 1 KiB pieces: concatenating the pieces one by one copies ~72 GiB in all.
    piece = b"x" * 1024
    chunks = [b'{"a":"', *([piece] * (12 * 1024)), b'"}\n{"b":1}\n']
    started = time.perf_counter()
    lines = list(split_lines(chunks))
    elapsed = time.perf_counter() - started
    assert [len(line) for line in lines] == [12 * 1024 * 1024 + 8, 7]
    assert elapsed < 3.0, f"splitting took {elapsed:.1f}s"


def test_split_lines_caps_one_event() -> None:
    chunks = [b'{"a":1}\n', *([b"y" * 1000] * 11), b"\n"]
    lines = split_lines(chunks, max_line=10_000)
    assert next(lines) == b'{"a":1}'
    with pytest.raises(WatchEventTooLargeError, match="larger than 10000 bytes"):
        next(lines)
    # Exactly at the cap is fine; the cap is per line, not per stream.
    assert list(split_lines([b"z" * 100 + b"\n"] * 50, max_line=100)) == [b"z" * 100] * 50


def test_too_large_is_a_decode_error_for_the_reflector() -> None:
    assert issubclass(WatchEventTooLargeError, WatchDecodeError)
    stream = WatchStream(iter([b"q" * 64]), lambda: None, max_event_bytes=32)
    with pytest.raises(WatchEventTooLargeError):
        next(stream)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([b'{"a":1}', b"", b"  ", b'{"bb":[2]}']), max_size=12),
       st.lists(st.integers(min_value=0, max_value=80), max_size=10))
def test_split_lines_matches_split_whatever_the_chunking(lines: list[bytes],
                                                          cuts: list[int]) -> None:
    data = b"\n".join(lines)
    bounds = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    chunks = [data[a:b] for a, b in itertools.pairwise(bounds)]
    expected = [line for line in data.split(b"\n") if line.strip()]
    assert list(split_lines(chunks)) == expected
