"""HTTP/1.1 chunked framing of watch bodies (``dechunk``), cut into reads at every place."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pycontroller.client._watch import ChunkedFramingError, dechunk
from pycontroller.errors import TransportError


def encode(payloads: list[bytes], *, extension: bytes = b"") -> bytes:
    """A chunked body: one chunk per payload, then the last chunk and an empty trailer."""
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), extension, p) for p in payloads)
    return body + b"0\r\n\r\n"


def reads(data: bytes, cuts: list[int]) -> Callable[[], bytes]:
    """``read()`` returning ``data`` cut at ``cuts`` (sorted offsets), then EOF."""
    bounds = [0, *sorted(c for c in cuts if 0 < c < len(data)), len(data)]
    pieces = iter([data[a:b] for a, b in itertools.pairwise(bounds) if b > a])
    return lambda: next(pieces, b"")


def test_one_read_with_many_chunks_yields_their_payload_once() -> None:
    payloads = [b'{"a":1}\n', b'{"b":2}\n', b'{"c"', b':3}\n']
    assert list(dechunk(reads(encode(payloads), []))) == [b"".join(payloads)]


def test_payload_arrives_as_soon_as_a_read_has_it() -> None:
    data = encode([b"first\n", b"second\n"])
    served = iter([data[:14], data[14:]])

    def read() -> bytes:
        return next(served)

    stream = dechunk(read)
    assert next(stream) == b"first\n"  # without a second read
    assert list(stream) == [b"second\n"]


@settings(max_examples=300, deadline=None)
@given(payloads=st.lists(st.binary(min_size=1, max_size=300), max_size=8),
       cuts=st.lists(st.integers(min_value=0, max_value=3000), max_size=12),
       extension=st.sampled_from([b"", b";name=value", b" ; x"]))
def test_any_cut_into_reads_gives_the_same_payload(payloads: list[bytes], cuts: list[int],
                                                   extension: bytes) -> None:
    data = encode(payloads, extension=extension)
    assert b"".join(dechunk(reads(data, cuts))) == b"".join(payloads)


def test_ends_at_the_last_chunk_without_reading_more() -> None:
    data = encode([b"x\n"])
    calls = iter([data])

    def read() -> bytes:
        return next(calls)  # a second call would raise StopIteration inside the generator

    assert list(dechunk(read)) == [b"x\n"]


@pytest.mark.parametrize("cut", [0, 3, 9, 12])
def test_a_stream_that_ends_before_its_last_chunk_is_a_transport_error(cut: int) -> None:
    data = encode([b"hello\n"])[: len(encode([b"hello\n"])) - 5][:cut or None]
    with pytest.raises(TransportError, match="before its last chunk"):
        list(dechunk(reads(data, [])))


@pytest.mark.parametrize("body", [
    b"zz\r\nab\r\n0\r\n\r\n",  # not hex
    b"-2\r\nab\r\n0\r\n\r\n",  # sign
    b"0x2\r\nab\r\n0\r\n\r\n",  # prefix
    b"1_0\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n",  # underscore, as int() would accept
    b"\r\nab\r\n0\r\n\r\n",  # empty size
    b"2\r\nabXY0\r\n\r\n",  # no CRLF after the data
    b"1" * 20 + b"\r\n",  # absurd size
    b"2" + b" " * 2000 + b"\r\n",  # endless size line
])
def test_malformed_framing_is_refused(body: bytes) -> None:
    with pytest.raises(ChunkedFramingError):
        list(dechunk(reads(body, [1, 2, 5])))


def test_framing_error_is_a_transport_error() -> None:
    assert issubclass(ChunkedFramingError, TransportError)


def test_a_read_error_propagates() -> None:
    def read() -> bytes:
        raise TimeoutError("timed out")

    stream: Iterator[bytes] = dechunk(read)
    with pytest.raises(TimeoutError):
        next(stream)
