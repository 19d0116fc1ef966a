"""Client side of a line-based service: connect, send a request, read its reply.

Timeouts belong to the caller: wrap calls in ``trio.fail_after`` / ``move_on_after``.
An ``ERR <code> <text>`` reply raises ``RequestRefused`` with that code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Self

import trio

from syncrox.errors import BAD_COMMAND, RemoteProtocolError, RequestRefused
from syncrox.net.lines import LineConnection
from syncrox.net.tcp import format_peer
from syncrox.protocol.framing import parse_error

DEFAULT_MAX_LINE_BYTES = 65536


class LineClient:
    def __init__(self, conn: LineConnection) -> None:
        self.conn = conn

    @classmethod
    @asynccontextmanager
    async def connect(
        cls, host: str, port: int, *, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ) -> AsyncIterator[Self]:
        stream = await trio.open_tcp_stream(host, port)
        conn = LineConnection(
            stream, max_line_bytes=max_line_bytes, peer=format_peer(stream.socket.getpeername())
        )
        async with stream:
            yield cls(conn)

    async def receive_reply(self) -> str:
        """The next line from the server; ``ERR`` lines raise ``RequestRefused``."""
        line = await self.conn.receive_line()
        if line is None:
            raise RemoteProtocolError(BAD_COMMAND, "server closed the connection")
        error = parse_error(line)
        if error is not None:
            raise RequestRefused(*error)
        return line

    async def request(self, line: str) -> str:
        await self.conn.send_line(line)
        return await self.receive_reply()
