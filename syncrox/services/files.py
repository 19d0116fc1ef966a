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
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass

import trio

from syncrox.config import FilesConfig
from syncrox.errors import (
    BAD_ARGUMENT,
    BUSY,
    NOT_FOUND,
    NOT_MEMBER,
    RATE_LIMITED,
    TIMEOUT,
    TOO_LARGE,
    LocalProtocolError,
)
from syncrox.net.datagram import UdpTransport
from syncrox.net.lines import LineConnection
from syncrox.net.tcp import line_loop, serve_tcp
from syncrox.protocol import files as proto
from syncrox.protocol.files_events import max_report_bytes, parse_event_report
from syncrox.ratelimit import KeyedBuckets
from syncrox.services.context import BoundPorts, ServiceContext
from syncrox.services.files_export import event_row, to_csv, to_qlog
from syncrox.services.files_udp import FileData
from syncrox.services.registry import Member
from syncrox.store.files import EventRow, TransferRecord

logger = logging.getLogger("syncrox.files")
# EVENTS bodies (up to 12.8 MB each) held at once, server-wide; more reports wait their
# turn with their bytes in the kernel's socket buffers (TCP pushes back on the client).
# One: parsing is Python, so more at once would only share the interpreter lock (and the
# event loop's share of it) more thinly.
CONCURRENT_REPORTS = 1
REPORT_QUEUE_S = 30.0  # how long a report waits for the slot before BUSY
# METRICS exports built at once, server-wide (a maximal one: ~100 000 rows, ~14 MB, about a
# second of Python): in a worker thread, one at a time, so memory is bounded and the event
# loop keeps most of the interpreter.
CONCURRENT_EXPORTS = 1
EXPORT_QUEUE_S = 30.0
# Built bodies being sent at once: a client that does not read holds one for up to the
# send timeout, never the building slot; memory stays ~8 maximal bodies.
CONCURRENT_EXPORT_SENDS = 8
REPORT_ROWS_PER_WRITE = 5000


async def serve(
    ctx: ServiceContext, *, task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED
) -> None:
    transport = UdpTransport.bind(ctx.config.host, ctx.config.ports.files_udp)
    data = FileData(ctx.config.files, ctx.store.files, transport)

    reports = EventsGate.from_config(ctx.config.files)

    async def handle_connection(conn: LineConnection) -> None:
        await FilesSession(ctx, data, conn, reports).run()

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


@dataclass
class EventsGate:
    """What congestion events may cost, server-wide: ``slot`` bounds the ``EVENTS`` bodies
    being read or parsed at once, ``budget`` the report bytes each user in a room may send
    (parsing costs CPU), ``exports`` the ``METRICS`` bodies being built at once."""

    slot: trio.Semaphore
    budget: KeyedBuckets
    exports: trio.Semaphore
    export_sends: trio.Semaphore

    @classmethod
    def from_config(cls, config: FilesConfig) -> EventsGate:
        burst = max(config.report_burst_bytes, max_report_bytes(config.max_events_per_transfer))
        return cls(
            trio.Semaphore(CONCURRENT_REPORTS),
            KeyedBuckets(burst, 1 / config.report_bytes_per_s),
            trio.Semaphore(CONCURRENT_EXPORTS),
            trio.Semaphore(CONCURRENT_EXPORT_SENDS),
        )


class FilesSession:
    """One File Control connection."""

    def __init__(
        self, ctx: ServiceContext, data: FileData, conn: LineConnection, reports: EventsGate
    ) -> None:
        self.ctx = ctx
        self.data = data
        self.conn = conn
        self.reports = reports
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
        gate = self.reports
        busy = LocalProtocolError(BUSY, "too many metrics exports at once, try again later")
        await _take_slot(gate.export_sends, EXPORT_QUEUE_S, busy)
        try:
            await _take_slot(gate.exports, EXPORT_QUEUE_S, busy)
            try:  # built one at a time; sent (to a reader of any speed) without the slot
                rows = await files.events(transfer.id)
                body = await trio.to_thread.run_sync(_export, transfer, rows, command.format)
                del rows
            finally:
                gate.exports.release()
            await self.conn.send(f"METRICS {command.format} {len(body)}\n".encode() + body)
        finally:
            gate.export_sends.release()

    async def _take_report(self, command: proto.ReportEvents) -> str:
        # The body's bytes follow the line whatever the answer. Refused before it is read:
        # the connection closes (nothing else can skip a body safely). Refused after: the
        # body was read, the connection goes on. What needs no parsing is checked first,
        # and a transfer gets one attempt, taken before parsing: a report that cannot be
        # stored is parsed at most once per upload ticket.
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
        if command.size == 0:
            raise LocalProtocolError(BAD_ARGUMENT, "an event report holds at least one event")
        key = f"{self.member.code}/{self.member.user}"
        wait = self.reports.budget.take(key, trio.current_time(), cost=command.size)
        if wait:
            raise LocalProtocolError(
                RATE_LIMITED, f"too many event report bytes, retry in {wait:.0f} s", fatal=True
            )
        # The slot bounds the memory and the thread a body takes, from its first byte to
        # its last row stored; a member holding it with a slow body delays others'
        # reports (then BUSY), never anything else.
        busy = LocalProtocolError(
            BUSY, "too many event reports at once, try again later", fatal=True
        )
        await _take_slot(self.reports.slot, REPORT_QUEUE_S, busy)
        try:
            return await self._store_report(command, limit)
        finally:
            self.reports.slot.release()

    async def _store_report(self, command: proto.ReportEvents, limit: int) -> str:
        body = await self._report_body(command.size)
        transfer = await self._reported_transfer(command.session_id)
        files = self.ctx.store.files
        if not await files.claim_report(transfer.id, time.time()):
            raise LocalProtocolError(BAD_ARGUMENT, "this transfer has had its report")
        # Parsed off the event loop, which serves every service.
        rows = await trio.to_thread.run_sync(
            functools.partial(_report_rows, body, limit, transfer.started_at)
        )
        del body
        # In slices, so the database's one worker serves others in between.
        for first in range(0, len(rows), REPORT_ROWS_PER_WRITE):
            await files.add_events(transfer.id, first, rows[first : first + REPORT_ROWS_PER_WRITE])
        return f"OK EVENTS {transfer.id} {len(rows)}"

    async def _report_body(self, size: int) -> bytes:
        with trio.move_on_after(self.ctx.config.tcp.idle_timeout_s) as slow:
            return await self.conn.receive_body(size)
        assert slow.cancelled_caught
        raise LocalProtocolError(
            TIMEOUT, "the event report did not arrive in time, closing", fatal=True
        )

    async def _reported_transfer(self, session_id: str) -> TransferRecord:
        member = self._admitted()
        transfer = await self.ctx.store.files.get_transfer(proto.transfer_id_of(session_id))
        if transfer is None or transfer.room != member.code:
            raise LocalProtocolError(NOT_FOUND, "no such transfer in this room")
        if transfer.direction != "upload":
            raise LocalProtocolError(
                BAD_ARGUMENT, "only an upload's events are reported: the server sends downloads"
            )
        return transfer


async def _take_slot(slots: trio.Semaphore, wait_s: float, busy: LocalProtocolError) -> None:
    """One of ``slots``, waiting at most ``wait_s``; else ``busy`` is raised."""
    with trio.move_on_after(wait_s) as queued:
        await slots.acquire()
    if queued.cancelled_caught:
        raise busy


def _export(transfer: TransferRecord, rows: list[EventRow], form: str) -> bytes:
    if form == "csv":
        return to_csv(transfer, rows)
    # An upload's events are its client's report: the client's vantage point.
    vantage = "client" if transfer.direction == "upload" else "server"
    return to_qlog(transfer, rows, vantage=vantage)


def _report_rows(body: bytes, limit: int, ticket_time_s: float) -> list[EventRow]:
    """A report's events as stored rows. Their times are seconds since the ticket: placed
    on the server's own clock."""
    return [event_row(event, ticket_time_s) for event in parse_event_report(body, max_events=limit)]
