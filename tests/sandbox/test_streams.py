"""Demultiplexing Docker's attach stream: any chunking, bounded memory, exact truncation."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from syncrox.errors import RemoteProtocolError
from syncrox.sandbox.streams import STDERR, STDOUT, Demuxer


def frame(stream: int, payload: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(payload)) + payload


frames = st.lists(st.tuples(st.sampled_from([STDOUT, STDERR]), st.binary(max_size=300)))


def expected(parts: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(payload for kind, payload in parts if kind == stream)


@given(parts=frames, cap=st.integers(0, 700), cuts=st.lists(st.integers(1, 50), min_size=1))
def test_any_chunking_gives_each_stream_up_to_the_cap(
    parts: list[tuple[int, bytes]], cap: int, cuts: list[int]
) -> None:
    data = b"".join(frame(kind, payload) for kind, payload in parts)
    demux = Demuxer(cap)
    position, index = 0, 0
    while position < len(data):
        size = cuts[index % len(cuts)]
        demux.feed(data[position : position + size])
        position, index = position + size, index + 1
    out, err = expected(parts, STDOUT), expected(parts, STDERR)
    assert demux.stdout == out[:cap] and demux.stderr == err[:cap]
    assert demux.stdout_truncated == (len(out) > cap)
    assert demux.stderr_truncated == (len(err) > cap)
    assert demux.exceeded == (len(out) > cap or len(err) > cap)
    assert demux.complete


def test_a_huge_announced_frame_is_not_buffered() -> None:
    demux = Demuxer(10)
    demux.feed(struct.pack(">BxxxL", STDOUT, 2**32 - 1))
    for _ in range(100):
        demux.feed(b"x" * 10_000)
    assert demux.stdout == b"x" * 10 and demux.stdout_truncated and not demux.complete


def test_an_unknown_stream_is_refused() -> None:
    with pytest.raises(RemoteProtocolError):
        Demuxer(10).feed(frame(3, b"boom"))


def test_a_partial_header_is_kept_until_complete() -> None:
    demux = Demuxer(10)
    data = frame(STDERR, b"err")
    demux.feed(data[:5])
    assert not demux.complete
    demux.feed(data[5:])
    assert demux.stderr == b"err" and demux.complete
