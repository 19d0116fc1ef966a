"""Demultiplexing the engine's attach stream, bounded. Sans-IO.

Without a TTY, Docker interleaves a process's stdout and stderr on one connection as frames:
an 8-byte header (stream type: 1 stdout, 2 stderr; three zero bytes; payload size, 32-bit
big-endian) and the payload. ``Demuxer`` is fed whatever the socket gave and keeps at most
``cap`` bytes of each stream; it counts what it drops, so the caller knows a stream went past
the cap (``exceeded``) and can stop reading and destroy the container. It never holds more than
``2 * cap`` bytes plus one partial header, whatever frame sizes the stream announces.
"""

from __future__ import annotations

import struct

from syncrox.errors import RemoteProtocolError

HEADER_BYTES = 8
STDOUT = 1
STDERR = 2
_HEADER = struct.Struct(">BxxxL")


class Demuxer:
    def __init__(self, cap: int) -> None:
        if cap < 0:
            raise ValueError("cap must not be negative")
        self.cap = cap
        self._kept = {STDOUT: bytearray(), STDERR: bytearray()}
        self._seen = {STDOUT: 0, STDERR: 0}
        self._header = bytearray()
        self._stream = 0  # stream of the frame being read; 0 between frames
        self._remaining = 0  # payload bytes of the current frame still to come

    def feed(self, data: bytes) -> None:
        """Consume bytes; raises ``RemoteProtocolError`` for a frame of an unknown stream."""
        view = memoryview(data)
        while view:
            if self._remaining == 0:
                view = self._take_header(view)
            else:
                take = min(self._remaining, len(view))
                self._keep(self._stream, view[:take])
                self._remaining -= take
                view = view[take:]

    def _take_header(self, view: memoryview) -> memoryview:
        need = HEADER_BYTES - len(self._header)
        self._header += view[:need]
        if len(self._header) < HEADER_BYTES:
            return view[len(view) :]
        stream, size = _HEADER.unpack(self._header)
        self._header.clear()
        if stream not in (STDOUT, STDERR):
            raise RemoteProtocolError("BAD_STREAM", f"engine sent a frame of stream {stream}")
        self._stream, self._remaining = stream, size
        return view[need:]

    def _keep(self, stream: int, chunk: memoryview) -> None:
        kept = self._kept[stream]
        room = self.cap - len(kept)
        if room > 0:
            kept += chunk[:room]
        self._seen[stream] += len(chunk)

    @property
    def stdout(self) -> bytes:
        return bytes(self._kept[STDOUT])

    @property
    def stderr(self) -> bytes:
        return bytes(self._kept[STDERR])

    @property
    def stdout_truncated(self) -> bool:
        return self._seen[STDOUT] > self.cap

    @property
    def stderr_truncated(self) -> bool:
        return self._seen[STDERR] > self.cap

    @property
    def exceeded(self) -> bool:
        return self.stdout_truncated or self.stderr_truncated

    @property
    def complete(self) -> bool:
        """Whether the bytes fed so far end on a frame boundary."""
        return self._remaining == 0 and not self._header
