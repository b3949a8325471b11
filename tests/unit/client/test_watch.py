from __future__ import annotations

from collections.abc import Iterator

import pytest

from pycontroller.client._watch import WatchDecodeError, WatchStream, decode_event, split_lines


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


def test_stream_close_is_idempotent() -> None:
    closed: list[int] = []
    stream = WatchStream(iter([b'{"type":"BOOKMARK","object":{}}\n']),
                         lambda: closed.append(1))
    with stream:
        assert [e.type for e in stream] == ["BOOKMARK"]
    stream.close()
    assert closed == [1]
