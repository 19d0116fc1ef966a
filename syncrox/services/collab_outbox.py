"""A collab connection's outgoing queue and the task that drains it into the socket.

The document task relays updates to every member with ``put``, which never waits: a member
that stops reading must not stall the others. Once a member has more than ``max_bytes``
queued that it has not taken, its queue is dropped and replaced by one ``ERR OVERFLOW``
line, and the connection is closed after it. Nothing is lost by that: the client
reconnects and resyncs by state vector. The writer coalesces everything queued into one
``send`` (under the connection's lock and send deadline, so it never interleaves with the
session's own replies).
"""

from __future__ import annotations

import trio

from syncrox.net.lines import LineConnection
from syncrox.protocol.framing import encode_line, format_error

OVERFLOW = "OVERFLOW"


class OutboxClosed(Exception):
    """The outbox ended because of ``reason`` (overflow, or the document dropped us)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Outbox:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._chunks: list[bytes] = []
        self._size = 0
        self._lot = trio.lowlevel.ParkingLot()
        self._closed = False
        self._failure: str | None = None

    @property
    def queued_bytes(self) -> int:
        return self._size

    @property
    def closed(self) -> bool:
        return self._closed

    def put(self, data: bytes) -> None:
        """Queue ``data``; never waits. Ignored once the outbox is closed."""
        if self._closed:
            return
        if self._chunks and self._size + len(data) > self.max_bytes:
            self.fail(OVERFLOW, "you fell too far behind; reconnect to resync")
            return
        self._chunks.append(data)
        self._size += len(data)
        self._lot.unpark_all()

    def fail(self, code: str, text: str) -> None:
        """Drop what is queued, send one ``ERR`` line, then end the connection."""
        if self._closed:
            return
        self._chunks = [encode_line(format_error(code, text))]
        self._size = len(self._chunks[0])
        self._failure = code
        self._closed = True
        self._lot.unpark_all()

    def close(self) -> None:
        """Stop accepting; the writer sends what is queued, then returns."""
        self._closed = True
        self._lot.unpark_all()

    async def run(self, conn: LineConnection) -> None:
        """Write everything put, in order, until closed; raises ``OutboxClosed`` if the
        outbox was failed (the caller then closes the connection)."""
        while True:
            if not self._chunks:
                if self._closed:
                    break
                await self._lot.park()
                continue
            data = b"".join(self._chunks)
            self._chunks.clear()
            self._size = 0
            await conn.send(data)
        if self._failure is not None:
            raise OutboxClosed(self._failure)
