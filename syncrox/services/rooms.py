"""Room manager, TCP 9013: moves lines between a socket and the room registry.

The grammar lives in ``syncrox.protocol.rooms``; policy (codes, tokens, rate limits,
expiry) lives in ``syncrox.services.registry``. A connection may send many commands; it can
``LIST`` only the rooms it created or joined itself.
"""

from __future__ import annotations

import functools
import logging

import trio

from syncrox.errors import NOT_FOUND, LocalProtocolError
from syncrox.net.lines import LineConnection
from syncrox.net.tcp import line_loop, serve_tcp
from syncrox.protocol import rooms as proto
from syncrox.services.context import BoundPorts, ServiceContext

logger = logging.getLogger("syncrox.rooms")


async def serve(
    ctx: ServiceContext, *, task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED
) -> None:
    async def handle_connection(conn: LineConnection) -> None:
        await RoomsSession(ctx, conn).run()

    async with trio.open_nursery() as nursery:
        await nursery.start(ctx.rooms.run_expiry)
        port = await nursery.start(
            functools.partial(
                serve_tcp,
                handle_connection,
                service="rooms",
                host=ctx.config.host,
                port=ctx.config.ports.rooms,
                limits=ctx.config.tcp,
            )
        )
        task_status.started({"rooms": port})


class RoomsSession:
    """One client connection of the room manager."""

    def __init__(self, ctx: ServiceContext, conn: LineConnection) -> None:
        self.ctx = ctx
        self.conn = conn
        self.entered: set[str] = set()  # rooms this connection created or joined

    async def run(self) -> None:
        await line_loop(self.conn, self.ctx.config.tcp, self.handle_line, logger)

    async def handle_line(self, line: str) -> bool:
        command = proto.parse_rooms_command(line)
        reply = await self.execute(command)
        await self.conn.send_line(reply)
        return not isinstance(command, proto.Bye)

    async def execute(self, command: proto.RoomsCommand) -> str:
        registry, peer = self.ctx.rooms, self.conn.peer_host
        match command:
            case proto.Create(user):
                member, token = await registry.create(user, peer)
                self.entered.add(member.code)
                return proto.format_room(member.code, token)
            case proto.Join(code, user, token):
                token = await registry.join(code, user, peer, token)
                self.entered.add(code)
                return proto.format_joined(code, user, token)
            case proto.Exists(code):
                if not await registry.exists(code, peer):
                    raise LocalProtocolError(NOT_FOUND, f"no room {code}")
                return "OK"
            case proto.ListRooms():
                return proto.format_rooms(await registry.visible_rooms(self.entered))
            case proto.WhoAmI(token):
                member = await registry.whoami(token)
                return proto.format_member(member.code, member.user)
            case proto.Leave(token):
                member = await registry.leave(token)
                self.entered.discard(member.code)
                return f"OK LEFT {member.code}"
            case proto.Ping():
                return "PONG"
            case proto.Bye():
                return "OK BYE"
