"""A raw line client for service tests: what a user with netcat would type."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from syncrox.config import Config
from syncrox.net.lines import LineConnection
from syncrox.services import rooms
from syncrox.services.context import BoundPorts, ServeFunction, ServiceContext
from syncrox.services.registry import RoomRegistry
from syncrox.store import Store


class RawClient:
    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = LineConnection(stream, max_line_bytes=1 << 20)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def line(self) -> str | None:
        return await self.conn.receive_line()

    async def ask(self, line: str) -> str:
        await self.send(line.encode() + b"\n")
        reply = await self.line()
        assert reply is not None, f"connection closed after {line!r}"
        return reply

    async def closed(self) -> bool:
        """True once the server has closed its side (EOF after any pending lines)."""
        while True:
            line = await self.line()
            if line is None:
                return True


@asynccontextmanager
async def raw_client(port: int) -> AsyncIterator[RawClient]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        yield RawClient(stream)


@asynccontextmanager
async def running_service(
    config: Config, serve: ServeFunction
) -> AsyncIterator[tuple[BoundPorts, ServiceContext]]:
    """The room manager and one service on free ports, over a store of their own; stopped
    (and the store closed) when the block ends."""
    store = Store.open(config.data_dir, sqlite_worker_thread=config.store.sqlite_worker_thread)
    try:
        ctx = ServiceContext(config, store, RoomRegistry(store.rooms, config.rooms))
        async with trio.open_nursery() as nursery:
            ports: BoundPorts = {}
            ports.update(await nursery.start(rooms.serve, ctx))
            ports.update(await nursery.start(serve, ctx))
            yield ports, ctx
            nursery.cancel_scope.cancel()
    finally:
        store.close()
