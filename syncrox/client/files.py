"""Trio client of the file service: File Control over TCP, File Data over reliable UDP.

``FilesClient`` speaks the control lines; ``upload`` and ``download`` run one transfer each
on their own UDP socket (optionally through in-process network emulation) and return a
``TransferResult``. A download is written to ``<output>.part`` (with ``.part.json`` naming
the file it belongs to), verified against the server's SHA-256, fsynced and renamed into
place, so ``output`` only ever holds a whole, verified file; an interrupted download resumes
from the chunks already in ``.part``. An upload the server confirms (FIN-ACK) is stored; if
the confirmation is lost, the client asks LIST whether the digest is there.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

from syncrox.client.lines import LineClient
from syncrox.client.rooms import checked
from syncrox.config import FilesConfig
from syncrox.errors import (
    BAD_ARGUMENT,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    RequestRefused,
    StoreError,
    SyncroxError,
)
from syncrox.net.datagram import Address, DatagramTransport, UdpTransport
from syncrox.net.transfer import DatagramRouter, TransferSession, wall_clock_offset_s
from syncrox.netem import EmulatedPath, NetemConfig
from syncrox.protocol import files as proto
from syncrox.protocol.files_events import encode_event_report, select_for_report
from syncrox.protocol.names import validate_filename, validate_room_code, validate_user
from syncrox.protocol.names import validate_token as check_token
from syncrox.protocol.rudp.connection import (
    UNCONFIRMED,
    Connection,
    Direction,
    Limits,
    Offer,
    Role,
    State,
)
from syncrox.protocol.rudp.events import ROUTINE_KINDS, TransferEvent
from syncrox.protocol.rudp.packets import DEFAULT_MSS_BYTES, Codec

HASH_BLOCK_BYTES = 1 << 20
CLIENT_LINGER_S = 2.0  # re-answer a repeated FIN this long after a download completed
PROGRESS_INTERVAL_S = 0.1
MAX_CLIENT_EVENTS = 200_000
# A report stays within the server's default cap (a server configured lower refuses it).
REPORT_MAX_EVENTS = FilesConfig().max_events_per_transfer
# Above the server's wait for its report slot (30 s) plus parsing: a busy server answers
# BUSY before the client gives up.
REPORT_TIMEOUT_S = 90.0
# A ticket or a LIST is answered at once by a live server; one that admitted us and then
# went silent must not hang the command for ever.
REQUEST_TIMEOUT_S = 30.0
# The control connection carries nothing while the UDP phase runs; the server closes it
# after tcp.idle_timeout_s (300 s) of silence, which lost a long upload's EVENTS report and
# its LIST check. A PING this often keeps it open.
KEEPALIVE_S = 60.0
# The server's largest report (2 x 50 000 events as qlog) is ~25 MB; a body announced as
# larger is refused before it is read, so a broken server cannot fill our memory.
MAX_METRICS_BYTES = 64 << 20
Progress = Callable[[int, int], None]
# Called with each congestion event as the core records it, on the Trio thread, in the
# order of ``TransferResult.events``: it runs inside the transfer's loop, so it must be
# quick and keep bounded state (a live chart's buffer, not a second copy of everything).
EventHook = Callable[[TransferEvent], None]


class FilesClient(LineClient):
    room = ""  # the room this connection was admitted to (HELLO / AUTH)
    user = ""

    async def hello(self, code: str, user: str, token: str | None = None) -> None:
        line = f"HELLO {checked(validate_room_code, code)} {checked(validate_user, user)}"
        if token:
            line += f" {checked(check_token, token)}"
        await self._expect_hello(line)

    async def auth(self, token: str) -> None:
        await self._expect_hello(f"AUTH {checked(check_token, token)}")

    async def _expect_hello(self, line: str) -> None:
        reply = await self.request(line)
        parts = reply.split(" ")
        if parts[:2] != ["OK", "HELLO"] or len(parts) != 4:
            raise RemoteProtocolError("BAD_COMMAND", f"unexpected reply {reply[:60]!r}")
        self.room, self.user = validate_room_code(parts[2]), validate_user(parts[3])

    async def list_files(self) -> list[proto.FileEntry]:
        count = proto.parse_count(await self.request("LIST"), "FILES")
        return [proto.parse_file(await self.receive_reply()) for _ in range(count)]

    async def transfers(self) -> list[proto.TransferEntry]:
        count = proto.parse_count(await self.request("TRANSFERS"), "TRANSFERS")
        return [proto.parse_transfer(await self.receive_reply()) for _ in range(count)]

    async def upload_ticket(self, size: int, sha256: str, name: str) -> proto.SessionTicket:
        name = checked(validate_filename, name)
        return proto.parse_session(await self.request(f"UPLOAD {size} {sha256} {name}"))

    async def download_ticket(self, name: str) -> proto.SessionTicket:
        name = checked(validate_filename, name)
        return proto.parse_session(await self.request(f"DOWNLOAD {name}"))

    async def delete(self, name: str) -> None:
        await self.request(f"DELETE {checked(validate_filename, name)}")

    async def metrics(self, transfer_id: str, fmt: str = "csv") -> bytes:
        fmt_reply, size = proto.parse_metrics_header(
            await self.request(f"METRICS {proto.check_session_id(transfer_id)} {fmt}")
        )
        if fmt_reply != fmt:
            raise RemoteProtocolError("BAD_COMMAND", "metrics in another format than asked")
        if size > MAX_METRICS_BYTES:
            raise RemoteProtocolError(
                "BAD_ARGUMENT", f"a {size}-byte report is beyond any real one", fatal=True
            )
        return await self.conn.receive_body(size)

    async def report_events(
        self, session_id: str, events: list[TransferEvent], origin_s: float
    ) -> int:
        """Report an upload's congestion events (``EVENTS``); ``origin_s`` is when its ticket
        arrived, on the events' clock. Returns how many the server stored."""
        chosen = select_for_report(events, REPORT_MAX_EVENTS)
        body = encode_event_report(chosen, origin_s)
        line = f"EVENTS {proto.check_session_id(session_id, 'a session id')} {len(body)}\n"
        await self.conn.send(line.encode("ascii") + body)
        _, stored = proto.parse_events_reply(await self.receive_reply())
        return stored

    async def bye(self) -> None:
        await self.request("BYE")


@dataclass(frozen=True)
class TransferOptions:
    algo: str = "reno"
    codec: Codec = Codec.JSON
    mss: int = DEFAULT_MSS_BYTES
    netem: NetemConfig | None = None
    # Send File Data here instead of the port SESSION named (e.g. through a netem proxy).
    udp_port: int | None = None
    limits: Limits = field(default_factory=lambda: Limits(linger_s=CLIENT_LINGER_S))


@dataclass
class TransferResult:
    ok: bool
    direction: str
    name: str
    size: int
    seconds: float
    session_id: str  # the UDP session's secret: only this client knows it
    transfer_id: str = ""  # the public id TRANSFERS lists and METRICS takes
    resumed_bytes: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    final_cwnd: float | None = None
    srtt_ms: float | None = None
    algo: str = ""
    codec: str = ""
    failure: tuple[str, str] | None = None
    # Event times are Trio's clock (arbitrary origin); add this for Unix epoch seconds.
    events: list[TransferEvent] = field(default_factory=list)
    clock_offset_s: float = 0.0
    events_reported: int = 0  # an upload's events the server stored (EVENTS)
    report_failure: tuple[str, str] | None = None  # why the server refused them

    @property
    def goodput_bytes_per_s(self) -> float:
        moved = self.size - self.resumed_bytes
        return moved / self.seconds if self.seconds > 0 else 0.0


def file_digest(path: Path) -> tuple[int, str]:
    """Size and SHA-256 of a file, read in blocks (blocking: call from a thread)."""
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as handle:
        while block := handle.read(HASH_BLOCK_BYTES):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


# --------------------------------------------------------------------------- transfers


class _Source:
    """Reads an upload's chunks from its file (the chunk size is fixed by the handshake)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDONLY)
        self.conn: Connection | None = None

    def read(self, seq: int) -> bytes:
        assert self.conn is not None
        mss = self.conn.mss
        return os.pread(self.fd, mss, (seq - 1) * mss)

    def write(self, chunks: list[bytes]) -> None:
        raise StoreError("an upload receives no data")

    async def finish(self) -> None:
        raise StoreError("an upload stores nothing")

    def close(self) -> None:
        os.close(self.fd)


class _FileSink:
    """Receives a download into ``<output>.part``; ``finish`` verifies and renames it."""

    def __init__(self, output: Path, ticket: proto.SessionTicket) -> None:
        self.output, self.ticket = output, ticket
        self.part = output.with_name(output.name + ".part")
        self.meta = output.with_name(output.name + ".part.json")
        self.conn: Connection | None = None
        self.resume_bytes = self._existing_part()
        self._hasher = hashlib.sha256()
        self._handle = self.part.open("r+b" if self.resume_bytes else "wb")
        self.meta.write_text(json.dumps({"size": ticket.size, "sha256": ticket.sha256}))
        self._prepared = False

    def _existing_part(self) -> int:
        try:
            meta = json.loads(self.meta.read_text())
            if meta == {"size": self.ticket.size, "sha256": self.ticket.sha256}:
                return min(self.part.stat().st_size, self.ticket.size)
        except (OSError, ValueError):
            pass
        return 0

    def _prepare(self) -> None:
        """Keep exactly the chunks the handshake said we hold, and hash them."""
        assert self.conn is not None
        # All chunks held ends with a short one: never keep (or grow the file to) more.
        keep = min(self.conn.resume_chunks * self.conn.mss, self.ticket.size)
        self._handle.truncate(keep)
        self._handle.seek(0)
        left = keep
        while left:
            block = self._handle.read(min(HASH_BLOCK_BYTES, left))
            self._hasher.update(block)
            left -= len(block)
        self._handle.seek(keep)
        self.resume_bytes = keep
        self._prepared = True

    def write(self, chunks: list[bytes]) -> None:
        if not self._prepared:
            self._prepare()
        for chunk in chunks:
            self._handle.write(chunk)
            self._hasher.update(chunk)

    async def finish(self) -> None:
        if not self._prepared:
            self._prepare()
        self._handle.flush()
        os.fsync(self._handle.fileno())
        size = self._handle.tell()
        if size != self.ticket.size or self._hasher.hexdigest() != self.ticket.sha256:
            self.close()
            self.part.unlink(missing_ok=True)
            self.meta.unlink(missing_ok=True)
            raise StoreError("the downloaded file does not match its SHA-256")
        self.close()
        os.replace(self.part, self.output)
        self.meta.unlink(missing_ok=True)

    def close(self) -> None:
        if not self._handle.closed:
            self._handle.close()


async def upload(
    client: FilesClient,
    host: str,
    path: Path,
    options: TransferOptions,
    *,
    name: str | None = None,
    progress: Progress | None = None,
    on_event: EventHook | None = None,
) -> TransferResult:
    name = checked(validate_filename, name or path.name)
    size, digest = await trio.to_thread.run_sync(file_digest, path)
    asked_at = trio.current_time()
    with trio.fail_after(REQUEST_TIMEOUT_S):
        ticket = await client.upload_ticket(size, digest, name)
    ticket_at = trio.current_time()
    source = _Source(path)
    try:
        conn, events = _client_connection(
            Direction.UPLOAD, ticket, client.room, name, options, source=source.read,
            on_event=on_event,
        )  # fmt: skip
        conn.size, conn.sha256 = size, digest
        source.conn = conn
        result = await _run(
            conn, events, source, host, ticket, options=options, progress=progress,
            control_rtt_s=ticket_at - asked_at, control=client,
        )  # fmt: skip
    finally:
        source.close()
    result.resumed_bytes = min(conn.resume_chunks * conn.mss, size)
    if not result.ok and result.failure and result.failure[0] == UNCONFIRMED:
        result.ok = await _stored(client, name, digest)
    if result.events:
        await _report(client, result, ticket_at)
    return result


async def _stored(client: FilesClient, name: str, digest: str) -> bool:
    """Whether the room lists ``name`` with ``digest`` (the FIN-ACK was lost). ``False``
    when that cannot be known: the connection is gone or out of step."""
    try:
        with trio.fail_after(REQUEST_TIMEOUT_S):
            stored = await client.list_files()
    except (ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError):
        return False
    return any(f.name == name and f.sha256 == digest for f in stored)


async def _report(client: FilesClient, result: TransferResult, ticket_at: float) -> None:
    """Give the server this upload's events, for METRICS: best effort, the file is what
    counts, so nothing here raises. A refusal is kept in ``result.report_failure``. If the
    report could not be completed (no answer within ``REPORT_TIMEOUT_S``, the connection
    broken, e.g. closed by the server on a report above its limit while it was being
    sent), that is kept too and the connection is closed: it can no longer be trusted to
    be in step with the server."""
    failure: tuple[str, str] = ("TIMEOUT", f"no answer to EVENTS in {REPORT_TIMEOUT_S:g} s")
    with trio.move_on_after(REPORT_TIMEOUT_S):
        try:
            result.events_reported = await client.report_events(
                result.session_id, result.events, ticket_at
            )
            return
        except RequestRefused as exc:  # answered: the connection is still in step
            result.report_failure = (exc.code, exc.message)
            return
        except (ProtocolError, trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            failure = ("CLOSED", f"the connection failed during the report: {exc}")
    result.report_failure = failure
    await trio.aclose_forcefully(client.conn.stream)


async def download(
    client: FilesClient,
    host: str,
    name: str,
    output: Path,
    options: TransferOptions,
    *,
    progress: Progress | None = None,
    on_event: EventHook | None = None,
) -> TransferResult:
    """Download ``name`` to ``output``. The server sends, so the congestion events are
    its own (METRICS has them): this side's receiver records none, and ``on_event`` sees
    only what this side records (today nothing; kept for symmetry with ``upload``)."""
    if await trio.to_thread.run_sync(output.is_dir):
        raise SyncroxError(f"{output} is a directory; name the file to write")
    asked_at = trio.current_time()
    with trio.fail_after(REQUEST_TIMEOUT_S):
        ticket = await client.download_ticket(name)
    control_rtt_s = trio.current_time() - asked_at
    sink = _FileSink(output, ticket)
    try:
        conn, events = _client_connection(
            Direction.DOWNLOAD, ticket, client.room, name, options,
            resume_bytes=sink.resume_bytes, on_event=on_event,
        )  # fmt: skip
        sink.conn = conn
        result = await _run(
            conn, events, sink, host, ticket, options=options, progress=progress,
            control_rtt_s=control_rtt_s, control=client,
        )  # fmt: skip
    finally:
        sink.close()
    result.resumed_bytes = sink.resume_bytes
    return result


def _client_connection(
    direction: Direction,
    ticket: proto.SessionTicket,
    room: str,
    name: str,
    options: TransferOptions,
    *,
    source: Callable[[int], bytes] | None = None,
    resume_bytes: int = 0,
    on_event: EventHook | None = None,
) -> tuple[Connection, list[TransferEvent]]:
    """The client's connection and the list its events are recorded into (each kept one
    also handed to ``on_event`` at once, so a live view and the result agree)."""
    events: list[TransferEvent] = []

    def record(event: TransferEvent) -> None:
        # As the server does: beyond the cap only the telling events (and COMPLETE) are
        # kept, up to a hard bound.
        kept = len(events)
        if kept < MAX_CLIENT_EVENTS or (
            event.kind not in ROUTINE_KINDS and kept < 2 * MAX_CLIENT_EVENTS
        ):
            events.append(event)
            if on_event is not None:
                on_event(event)

    conn = Connection(
        role=Role.CLIENT, direction=direction, session_id=ticket.session_id, room=room,
        filename=name, limits=options.limits, now=trio.current_time(), source=source,
        offer=Offer(options.codec, options.algo, options.mss), resume_bytes=resume_bytes,
        on_event=record,
        expect_file=(ticket.size, ticket.sha256) if direction is Direction.DOWNLOAD else None,
    )  # fmt: skip
    return conn, events


async def _run(
    conn: Connection,
    events: list[TransferEvent],
    app: _Source | _FileSink,
    host: str,
    ticket: proto.SessionTicket,
    *,
    options: TransferOptions,
    progress: Progress | None,
    control_rtt_s: float,
    control: FilesClient | None = None,
) -> TransferResult:
    """Run one transfer. ``control_rtt_s``: how long the ticket took to come, a round trip
    to the same server (with its processing) that times the SYN (``Connection.connect``)."""
    server = await _resolve(host, options.udp_port or ticket.udp_port)
    transport: DatagramTransport = UdpTransport.bind(_wildcard(server), 0)
    started = trio.current_time()
    try:
        async with trio.open_nursery() as nursery:
            if options.netem is not None and options.netem.active:
                path = EmulatedPath(transport, options.netem)
                await nursery.start(path.run)
                transport = path
            router = DatagramRouter(transport, answer_unknown=False)
            session = TransferSession(conn, transport, server, app)
            router.add(session)
            nursery.start_soon(router.run)
            if progress is not None:
                nursery.start_soon(_report_progress, conn, ticket.size, progress)
            if control is not None:
                nursery.start_soon(_keep_control_alive, control)
            nursery.start_soon(session.run)
            conn.connect(trio.current_time(), path_rtt_s=_udp_rtt_hint(control_rtt_s, options))
            await session.flush(trio.current_time())
            await session.settled.wait()
            elapsed = trio.current_time() - started
            if conn.state is State.TIME_WAIT:
                with trio.move_on_after(CLIENT_LINGER_S):
                    await session.closed.wait()
            nursery.cancel_scope.cancel()
    finally:
        transport.close()
    if progress is not None:  # the last periodic report may predate the final ACK
        progress(_done_bytes(conn, ticket.size), ticket.size)
    return _result(conn, events, ticket, elapsed)


def _result(
    conn: Connection, events: list[TransferEvent], ticket: proto.SessionTicket, elapsed: float
) -> TransferResult:
    sender = conn.sender
    ok = conn.state in (State.CLOSED, State.TIME_WAIT)
    return TransferResult(
        ok=ok, direction=conn.direction.value, name=conn.filename, size=ticket.size,
        seconds=elapsed, session_id=conn.session_id,
        transfer_id=proto.transfer_id_of(conn.session_id),
        retransmissions=sender.stats.retransmissions if sender else 0,
        timeouts=sender.stats.timeouts if sender else 0,
        final_cwnd=sender.cc.cwnd if sender else None,
        srtt_ms=sender.rtt.srtt_ms if sender else None,
        algo=conn.algo, codec=conn.codec.value, failure=conn.failure,
        events=list(events), clock_offset_s=wall_clock_offset_s(),
    )  # fmt: skip


def _udp_rtt_hint(control_rtt_s: float, options: TransferOptions) -> float | None:
    """The control round trip stands for the UDP path's only when both go the same way:
    not through emulation or a proxy (``--files-udp-port``), whose delays only UDP sees.
    A SYN resent too early would cost the SYN-to-SYN-ACK RTT sample (Karn)."""
    emulated = options.netem is not None and options.netem.active
    return None if emulated or options.udp_port is not None else control_rtt_s


async def _keep_control_alive(control: FilesClient) -> None:
    """PING the File Control connection while the transfer runs (see ``KEEPALIVE_S``).
    Shielded, so the end of the transfer never cuts a PING off before its PONG, which the
    next request would then read as its own reply."""
    while True:
        await trio.sleep(KEEPALIVE_S)
        with trio.CancelScope(shield=True):
            try:
                with trio.fail_after(REQUEST_TIMEOUT_S):
                    await control.request("PING")
            except trio.TooSlowError:
                # Its PONG may still come and be read as the next request's reply: the
                # connection is out of step, so it is closed (later requests fail clearly).
                await trio.aclose_forcefully(control.conn.stream)
                return
            except (SyncroxError, trio.BrokenResourceError, trio.ClosedResourceError):
                return  # best effort: the transfer itself does not need the connection


async def _report_progress(conn: Connection, total: int, progress: Progress) -> None:
    while True:
        progress(_done_bytes(conn, total), total)
        await trio.sleep(PROGRESS_INTERVAL_S)


def _done_bytes(conn: Connection, total: int) -> int:
    """Bytes the receiving end holds in order (acknowledged, or received when we receive)."""
    if conn.sender is not None:
        return min(conn.sender.stats.bytes_acked + conn.resume_chunks * conn.mss, total)
    if conn.receiver is not None:
        return min(conn.receiver.ack * conn.mss, total)
    return 0


async def _resolve(host: str, port: int) -> Address:
    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    if not infos:
        raise LocalProtocolError(BAD_ARGUMENT, f"cannot resolve {host}")
    address = infos[0][4]
    return (str(address[0]), int(address[1]))


def _wildcard(server: Address) -> str:
    return "::" if ":" in server[0] else "0.0.0.0"  # noqa: S104 (an ephemeral client port)
