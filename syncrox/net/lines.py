"""A Trio stream spoken in lines and bodies (the edge of ``protocol.framing``).

Reads are bounded: at most ``RECEIVE_CHUNK`` bytes per receive and never more buffered than
the framing allows. Writes are whole messages under a lock, so a broadcast can never
interleave with a reply (the original's interleaved-framing bug), and each write has a
deadline: a peer that stops reading is disconnected instead of stalling the writer.
"""

from __future__ import annotations

import trio

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.framing import FrameBuffer, encode_line

RECEIVE_CHUNK = 65536


class PeerTooSlow(trio.BrokenResourceError):
    """A send did not complete within the connection's send deadline."""


class LineConnection:
    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        max_line_bytes: int,
        peer: str = "?",
        send_timeout_s: float = 10.0,
    ) -> None:
        self.stream = stream
        self.peer = peer
        self.frames = FrameBuffer(max_line_bytes)
        self.send_timeout_s = send_timeout_s
        self._send_lock = trio.Lock()
        self._eof = False

    @property
    def peer_host(self) -> str:
        """The address part of ``peer`` (``host:port`` or ``[v6]:port``)."""
        host, _, _ = self.peer.rpartition(":")
        return host.strip("[]") or self.peer

    async def receive_line(self) -> str | None:
        """The next line, or ``None`` once the peer has closed (a partial line is dropped).

        Raises ``RemoteProtocolError`` for a line the framing refuses; the connection stays
        usable afterwards.
        """
        while True:
            line = self.frames.next_line()
            if line is not None:
                return line
            if not await self._receive_more():
                return None

    async def receive_body(self, size: int) -> bytes:
        """Exactly ``size`` bytes; raises ``RemoteProtocolError`` if the peer closes first."""
        while True:
            body = self.frames.next_body(size)
            if body is not None:
                return body
            if not await self._receive_more():
                raise RemoteProtocolError(
                    "BAD_ARGUMENT", f"connection closed inside a {size}-byte body", fatal=True
                )

    async def skip_body(self, size: int) -> None:
        """Read ``size`` bytes and drop them as they come (a refused request's body: it
        must not be read as lines, nor held in memory). Raises like ``receive_body``."""
        left = size - self.frames.drop_body(size)
        while left:
            if not await self._receive_more():
                raise RemoteProtocolError(
                    "BAD_ARGUMENT", f"connection closed inside a {size}-byte body", fatal=True
                )
            left -= self.frames.drop_body(left)

    async def _receive_more(self) -> bool:
        if self._eof:
            return False
        data = await self.stream.receive_some(RECEIVE_CHUNK)
        if not data:
            self._eof = True
            return False
        self.frames.feed(data)
        return True

    async def send_line(self, text: str) -> None:
        await self.send(encode_line(text))

    async def send_lines(self, lines: list[str]) -> None:
        await self.send(b"".join(encode_line(line) for line in lines))

    async def send(self, data: bytes) -> None:
        """Send one whole message; a peer too slow to take it within the deadline is cut off."""
        async with self._send_lock:
            with trio.move_on_after(self.send_timeout_s) as scope:
                await self.stream.send_all(data)
        if scope.cancelled_caught:
            # A half-sent message leaves the stream unusable: close it for every writer.
            await trio.aclose_forcefully(self.stream)
            raise PeerTooSlow(f"peer {self.peer} did not take {len(data)} bytes in time")

    async def aclose(self) -> None:
        await self.stream.aclose()
