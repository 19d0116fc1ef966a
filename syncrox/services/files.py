"""File Control, TCP 9010: admission, listing, signalling transfers, deletion, metrics.

A connection first proves membership (``HELLO <code> <user> [<token>]`` or ``AUTH
<token>``, checked by the room registry) and holds a presence in that room while open.
From then on every command concerns that room only: rooms are isolated because nothing on
this channel can name another one. ``UPLOAD`` and ``DOWNLOAD`` answer with the
``session_id`` the UDP handshake must carry; the data itself flows on File Data (UDP 9011,
``syncrox.services.files_udp``). The grammar lives in ``syncrox.protocol.files``.

Congestion events: the server records its own for downloads (it is the data sender); an
uploading client reports its own afterwards with ``EVENTS`` (``syncrox.protocol.files_events``),
so ``METRICS`` has every transfer's. A report needs the transfer's session id (only the
client that asked for the ticket has it), is bounded by the per-transfer event cap, and is
taken once.
"""

from __future__ import annotations

import functools
import logging
from contextlib import AsyncExitStack

import trio

from syncrox.errors import BAD_ARGUMENT, NOT_FOUND, NOT_MEMBER, TOO_LARGE, LocalProtocolError
from syncrox.net.datagram import UdpTransport
from syncrox.net.lines import LineConnection
from syncrox.net.tcp import line_loop, serve_tcp
from syncrox.protocol import files as proto
from syncrox.protocol.files_events import max_report_bytes, parse_event_report
from syncrox.services.context import BoundPorts, ServiceContext
from syncrox.services.files_export import event_row, to_csv, to_qlog
from syncrox.services.files_udp import FileData
from syncrox.services.registry import Member

logger = logging.getLogger("syncrox.files")


async def serve(
    ctx: ServiceContext, *, task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED
) -> None:
    transport = UdpTransport.bind(ctx.config.host, ctx.config.ports.files_udp)
    data = FileData(ctx.config.files, ctx.store.files, transport)

    async def handle_connection(conn: LineConnection) -> None:
        await FilesSession(ctx, data, conn).run()

    async with trio.open_nursery() as nursery:
        await nursery.start(data.run)
        port = await nursery.start(
            functools.partial(
                serve_tcp,
                handle_connection,
                service="files",
                host=ctx.config.host,
                port=ctx.config.ports.files_tcp,
                limits=ctx.config.tcp,
            )
        )
        task_status.started({"files_tcp": port, "files_udp": data.udp_port})


class FilesSession:
    """One File Control connection."""

    def __init__(self, ctx: ServiceContext, data: FileData, conn: LineConnection) -> None:
        self.ctx = ctx
        self.data = data
        self.conn = conn
        self.member: Member | None = None
        self._presence = AsyncExitStack()

    async def run(self) -> None:
        async with self._presence:
            await line_loop(self.conn, self.ctx.config.tcp, self.handle_line, logger)

    async def handle_line(self, line: str) -> bool:
        command = proto.parse_files_command(
            line, max_file_bytes=self.ctx.config.files.max_file_bytes
        )
        if isinstance(command, proto.Metrics):
            await self._send_metrics(command)
            return True
        if isinstance(command, proto.ReportEvents):
            await self.conn.send_line(await self._take_report(command))
            return True
        if isinstance(command, proto.ListFiles | proto.ListTransfers):
            await self.conn.send_lines(await self._listing(command))
            return True
        await self.conn.send_line(await self.execute(command))
        return not isinstance(command, proto.Bye)

    def _admitted(self) -> Member:
        if self.member is None:
            raise LocalProtocolError(NOT_MEMBER, "say HELLO <code> <user> [<token>] first")
        return self.member

    async def execute(self, command: proto.FilesCommand) -> str:
        peer = self.conn.peer_host
        match command:
            case proto.Hello(code, user, token):
                return await self._enter(await self.ctx.rooms.admit(code, user, peer, token))
            case proto.Auth(token):
                return await self._enter(await self.ctx.rooms.admit_token(token, peer))
            case proto.Upload():
                return proto.format_session(await self.data.open_upload(self._admitted(), command))
            case proto.Download(name):
                return proto.format_session(await self.data.open_download(self._admitted(), name))
            case proto.Delete(name):
                await self.data.delete(self._admitted(), name)
                return f"OK DELETED {name}"
            case proto.Ping():
                return "PONG"
            case _:
                return "OK BYE"

    async def _enter(self, member: Member) -> str:
        if self.member is not None and self.member.code != member.code:
            raise LocalProtocolError(NOT_MEMBER, "this connection already belongs to a room")
        if self.member is None:
            await self._presence.enter_async_context(self.ctx.rooms.presence(member))
        self.member = member
        return f"OK HELLO {member.code} {member.user}"

    async def _listing(self, command: proto.ListFiles | proto.ListTransfers) -> list[str]:
        member = self._admitted()
        files = self.ctx.store.files
        if isinstance(command, proto.ListFiles):
            records = await files.list_files(member.code)
            entries = [
                proto.format_file(
                    proto.FileEntry(r.size, r.digest, int(r.created_at), r.uploaded_by, r.name)
                )
                for r in records
            ]
            return [f"FILES {len(entries)}", *entries]
        # A transfer's row id is its public transfer_id, never the session id: every member
        # sees every transfer, only the ticket's holder can speak for it on UDP.
        transfers = await files.list_transfers(member.code, self.ctx.config.files.transfers_listed)
        lines = [
            proto.format_transfer(
                proto.TransferEntry(t.id, t.direction, t.status, t.algo, t.codec, t.size,
                                    int(t.started_at), t.name)
            )
            for t in transfers
        ]  # fmt: skip
        return [f"TRANSFERS {len(lines)}", *lines]

    async def _send_metrics(self, command: proto.Metrics) -> None:
        member = self._admitted()
        files = self.ctx.store.files
        transfer = await files.get_transfer(command.transfer_id)
        if transfer is None or transfer.room != member.code:
            raise LocalProtocolError(NOT_FOUND, "no such transfer in this room")
        rows = await files.events(transfer.id)
        if command.format == "csv":
            body = to_csv(transfer, rows)
        else:
            # An upload's events are its client's report: the client's vantage point.
            vantage = "client" if transfer.direction == "upload" else "server"
            body = to_qlog(transfer, rows, vantage=vantage)
        await self.conn.send(f"METRICS {command.format} {len(body)}\n".encode() + body)

    async def _take_report(self, command: proto.ReportEvents) -> str:
        # The body's bytes follow the line whatever the answer, and cannot be skipped
        # without reading them: refusals before the body is read close the connection.
        if self.member is None:
            raise LocalProtocolError(
                NOT_MEMBER, "say HELLO <code> <user> [<token>] first", fatal=True
            )
        limit = self.ctx.config.files.max_events_per_transfer
        if command.size > max_report_bytes(limit):
            raise LocalProtocolError(
                TOO_LARGE, f"an event report is at most {max_report_bytes(limit)} bytes",
                fatal=True,
            )  # fmt: skip
        with trio.move_on_after(self.ctx.config.tcp.idle_timeout_s) as idle:
            body = await self.conn.receive_body(command.size)
        if idle.cancelled_caught:
            raise LocalProtocolError(BAD_ARGUMENT, "the event report stopped short", fatal=True)
        events = parse_event_report(body, max_events=limit)
        files = self.ctx.store.files
        transfer = await files.get_transfer(proto.transfer_id_of(command.session_id))
        if transfer is None or transfer.room != self.member.code:
            raise LocalProtocolError(NOT_FOUND, "no such transfer in this room")
        if transfer.direction != "upload":
            raise LocalProtocolError(
                BAD_ARGUMENT, "only an upload's events are reported: the server sends downloads"
            )
        # Times are seconds since the ticket: place them on the server's own clock.
        rows = [event_row(event, transfer.started_at) for event in events]
        if not await files.add_reported_events(transfer.id, rows):
            raise LocalProtocolError(BAD_ARGUMENT, "this transfer's events are already stored")
        return f"OK EVENTS {transfer.id} {len(rows)}"
