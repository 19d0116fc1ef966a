"""Fuzz targets of the foundation: framing and the room manager's command parser.
Each takes arbitrary bytes and either returns or raises ``ProtocolError``; anything else
(another exception, a hang, unbounded memory) is a bug.

Where a target parses a stream, it feeds the bytes whole and byte by byte and checks both
give the same result, so chunk boundaries can never change what the server understands.
"""

from __future__ import annotations

from syncrox.errors import ProtocolError
from syncrox.protocol.framing import FrameBuffer
from syncrox.protocol.rooms import parse_rooms_command

MAX_LINE_BYTES = 64

Outcome = tuple[str, str]


def _drain(buffer: FrameBuffer) -> list[Outcome]:
    """Every line and framing error ``buffer`` can produce now; lines respect its limit."""
    outcomes: list[Outcome] = []
    while True:
        try:
            line = buffer.next_line()
        except ProtocolError as exc:
            outcomes.append(("error", exc.code))
            continue
        if line is None:
            return outcomes
        assert len(line.encode("utf-8")) <= buffer.max_line_bytes
        outcomes.append(("line", line))


def split_lines(data: bytes, chunk_sizes: list[int]) -> list[Outcome]:
    """Feed ``data`` in chunks of the given sizes (cycled); return every line and error."""
    buffer = FrameBuffer(MAX_LINE_BYTES)
    outcomes: list[Outcome] = []
    position, index = 0, 0
    while position < len(data):
        size = max(1, chunk_sizes[index % len(chunk_sizes)])
        buffer.feed(data[position : position + size])
        position += size
        index += 1
        outcomes += _drain(buffer)
        assert buffer.buffered_bytes <= MAX_LINE_BYTES + 2 + size
    return outcomes


def framing(data: bytes) -> None:
    whole = split_lines(data, [len(data) or 1])
    bytewise = split_lines(data, [1])
    assert whole == bytewise, (whole, bytewise)


def rooms_command(data: bytes) -> None:
    buffer = FrameBuffer(4096)
    buffer.feed(data + b"\n")
    for _, line in _drain(buffer):
        try:
            parse_rooms_command(line)
        except ProtocolError:
            pass
