"""The TCP edge every service shares: one connection's misfortune never ends a service."""

from __future__ import annotations

import functools
import socket
import struct

import trio
import trio.testing

from syncrox.config import TcpLimits
from syncrox.net.lines import LineConnection
from syncrox.net.tcp import serve_tcp
from tests.conftest import IO_TIMEOUT_S


def connect_and_reset(port: int) -> None:
    """Connect, then reset at once, before the server has had a chance to accept: by the
    time it does, the socket has no peer any more (getpeername fails)."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


async def greet(conn: LineConnection) -> None:
    await conn.send_line("HI")


async def test_a_connection_reset_before_it_is_accepted_does_not_end_the_service() -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(
                functools.partial(
                    serve_tcp, greet, service="test", host="127.0.0.1", port=0,
                    limits=TcpLimits(),
                )
            )  # fmt: skip
            for _ in range(20):
                connect_and_reset(port)  # without yielding to Trio in between
            await trio.sleep(0.2)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                assert await stream.receive_some(16) == b"HI\n"
            nursery.cancel_scope.cancel()


async def test_a_skipped_body_is_dropped_as_it_arrives_and_lines_resume_after_it() -> None:
    with trio.fail_after(IO_TIMEOUT_S):
        ours, theirs = trio.testing.memory_stream_pair()
        conn = LineConnection(ours, max_line_bytes=100)
        piece = b"BYE\n" * 1024  # looks like commands: must never be read as lines
        most = 0

        async def feed() -> None:
            await theirs.send_all(b"RUN python 40960 0\n")
            for _ in range(10):
                await theirs.send_all(piece)
            await theirs.send_all(b"PING\n")

        async def watch() -> None:
            nonlocal most
            while True:
                most = max(most, conn.frames.buffered_bytes)
                await trio.lowlevel.checkpoint()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(feed)
            nursery.start_soon(watch)
            assert await conn.receive_line() == "RUN python 40960 0"
            await conn.skip_body(40960)
            assert await conn.receive_line() == "PING"
            nursery.cancel_scope.cancel()
        assert most <= 2 * len(piece)  # never the whole body
