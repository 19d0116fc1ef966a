"""Fuzz targets of code execution: the exec request stream a server reads, the replies a
client reads, and the engine's multiplexed output stream. Each returns, or raises
``ProtocolError``; anything else (another exception, unbounded memory) is a bug.

Stream targets feed the same bytes whole and byte by byte and require the same outcome, so
TCP segmentation can never change what the service understands.
"""

from __future__ import annotations

import struct

from syncrox.errors import ProtocolError
from syncrox.protocol import exec as proto
from syncrox.protocol.framing import FrameBuffer
from syncrox.sandbox.streams import Demuxer

MAX_LINE_BYTES = 256
MAX_CODE_BYTES = 64
MAX_STDIN_BYTES = 64
DEMUX_CAP = 32

Outcome = tuple[str, object]


class _RequestReader:
    """What the service's session does with its bytes, minus the sockets: lines are parsed;
    a RUN's two bodies are read in full before the request is judged; a fatal error ends it."""

    def __init__(self) -> None:
        self.frames = FrameBuffer(MAX_LINE_BYTES)
        self.pending: proto.RunHeader | None = None
        self.closed = False

    def drain(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while not self.closed:
            outcome = self._next()
            if outcome is None:
                return outcomes
            outcomes.append(outcome)
        return outcomes

    def _next(self) -> Outcome | None:
        if self.pending is not None:
            return self._bodies(self.pending)
        try:
            line = self.frames.next_line()
            if line is None:
                return None
            command = proto.parse_exec_command(
                line,
                max_code_bytes=MAX_CODE_BYTES,
                max_stdin_bytes=MAX_STDIN_BYTES,
                history_page_max=100,
            )
        except ProtocolError as exc:
            self.closed = exc.fatal
            return ("error", exc.code)
        if isinstance(command, proto.RunHeader):
            self.pending = command
            return ("header", command)
        return ("command", command)

    def _bodies(self, header: proto.RunHeader) -> Outcome | None:
        needed = header.code_bytes + header.stdin_bytes
        if self.frames.buffered_bytes < needed:
            return None
        code = self.frames.next_body(header.code_bytes) or b""
        stdin = self.frames.next_body(header.stdin_bytes) or b""
        self.pending = None
        assert len(code) == header.code_bytes
        assert len(stdin) == header.stdin_bytes
        try:
            return ("run", proto.complete_run(header, code, stdin))
        except ProtocolError as exc:
            # The bodies were read: the connection stays usable, so no error may be fatal.
            fatal = exc.fatal
            outcome: Outcome = ("error", exc.code)
        assert not fatal
        return outcome


def _read_requests(data: bytes, chunk: int) -> list[Outcome]:
    reader = _RequestReader()
    outcomes: list[Outcome] = []
    for start in range(0, len(data), chunk):
        if reader.closed:
            break
        reader.frames.feed(data[start : start + chunk])
        outcomes += reader.drain()
        # Bounded: an unfinished line, or one RUN's announced bodies, plus the last chunk.
        limit = MAX_LINE_BYTES + 2 + MAX_CODE_BYTES + MAX_STDIN_BYTES + chunk
        assert reader.frames.buffered_bytes <= limit or reader.pending is None
    return outcomes


def exec_request(data: bytes) -> None:
    whole = _read_requests(data, max(1, len(data)))
    bytewise = _read_requests(data, 1)
    assert whole == bytewise, (whole, bytewise)


def exec_reply(data: bytes) -> None:
    """A client parsing whatever a (possibly hostile) server sends as reply lines."""
    frames = FrameBuffer(4096)
    frames.feed(data + b"\n")
    while True:
        try:
            line = frames.next_line()
        except ProtocolError:
            continue
        if line is None:
            return
        for parse in (proto.parse_result, proto.parse_entry):
            try:
                parse(line, max_body_bytes=1 << 20)
            except ProtocolError:
                pass
        try:
            proto.parse_count(line, "HISTORY")
        except ProtocolError:
            pass


def docker_stream(data: bytes) -> None:
    """The engine's stdout/stderr frames: the same result in any chunking, and bounded."""
    outcomes = []
    for chunk in (max(1, len(data)), 1, 7):
        demux = Demuxer(DEMUX_CAP)
        try:
            for start in range(0, len(data), chunk):
                demux.feed(data[start : start + chunk])
                assert len(demux.stdout) <= DEMUX_CAP
                assert len(demux.stderr) <= DEMUX_CAP
        except ProtocolError as exc:
            outcomes.append(("error", exc.code, demux.stdout, demux.stderr))
            continue
        outcomes.append(("ok", demux.stdout, demux.stderr, demux.exceeded, demux.complete))
    assert outcomes[0] == outcomes[1] == outcomes[2], outcomes


def frame(stream: int, payload: bytes) -> bytes:
    """A Docker stream frame (for seeds and tests)."""
    return struct.pack(">BxxxL", stream, len(payload)) + payload
