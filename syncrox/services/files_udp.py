"""File Data (UDP 9011): the sessions File Control hands out, and what they do with files.

Theory of operation
-------------------
``FileData`` owns the UDP socket through one ``DatagramRouter`` task. File Control calls
``open_upload`` / ``open_download`` for an admitted member; each creates a server-side
``Connection`` with a fresh 128-bit ``session_id``, registers it with the router and starts
its session task. Only that id, handed out over TCP to a member, opens the session: the UDP
side never trusts a room or file name it is sent (the SYN must repeat the ones registered).

Uploads stream into a ``BlobWriter`` while a SHA-256 is computed alongside; ``finish``
compares size and digest with what UPLOAD announced, then commits the blob (fsync, rename)
and points the room's name at it in one transaction. Nothing is ever visible half-written,
and a restart never overwrites a stored file (blobs are named by their digest).
An upload that stops part-way keeps its in-order prefix as a *partial* for
``partial_expiry_s``: an UPLOAD of the same room, name, size and digest resumes it (the
SYN-ACK's ``ack`` says how many chunks are held), taking over from a session still open.
Partials live in memory and the blob store's temporary directory, so a server restart
discards them (documented limit). Downloads read the blob by ``pread``, chunk by chunk.

A partial whose blob writer failed (a disk error while writing, or while committing at the
end) is discarded at once: its temporary file is gone, so there is nothing to resume, and a
resumed upload starts from zero instead of writing to a closed file.

Every transfer gets a row in ``transfers`` under its public ``transfer_id`` (derived from the
session id by a one-way hash, ``syncrox.protocol.files.transfer_id_of``: the room may see it,
only the ticket's holder knows the session id) and its congestion events (server-side: the
sender's for downloads) are written to SQLite in batches once a second.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from syncrox.config import FilesConfig
from syncrox.errors import (
    BUSY,
    NOT_FOUND,
    RATE_LIMITED,
    ROOM_FULL,
    LocalProtocolError,
    StoreError,
)
from syncrox.logs import log_event
from syncrox.net.datagram import DatagramTransport
from syncrox.net.transfer import DatagramRouter, TransferSession, wall_clock_offset_s
from syncrox.protocol.files import SessionTicket, Upload, transfer_id_of
from syncrox.protocol.rudp.connection import (
    ABORTED,
    SUPERSEDED,
    UNCONFIRMED,
    Connection,
    Direction,
    Limits,
    Role,
)
from syncrox.protocol.rudp.events import ROUTINE_KINDS, TransferEvent
from syncrox.protocol.rudp.packets import Codec
from syncrox.ratelimit import KeyedBuckets
from syncrox.services.files_export import event_row
from syncrox.services.registry import Member
from syncrox.store.blobs import BlobStore, BlobWriter
from syncrox.store.files import EventRow, FileRecord, FileStore, TransferRecord, unreferenced_blobs

logger = logging.getLogger("syncrox.files")

T = TypeVar("T")
EVENT_FLUSH_S = 1.0
PARTIAL_SWEEP_S = 60.0
GARBAGE_EVERY_S = 3600.0  # an expired room's files leave the disk within the hour
BAD_DIGEST = "BAD_DIGEST"


def limits_from(config: FilesConfig) -> Limits:
    codecs = (Codec.JSON, Codec.BINARY) if config.allow_binary_codec else (Codec.JSON,)
    return Limits(
        rto_min_ms=config.rto_min_ms, rto_max_ms=config.rto_max_ms,
        max_retries=config.max_retries, buffer_bytes=config.recv_buffer_bytes,
        max_mss_bytes=config.max_mss_bytes, idle_timeout_s=config.session_idle_s,
        stall_timeout_s=config.session_stall_s, linger_s=config.linger_s, codecs=codecs,
    )  # fmt: skip


class EventRecorder:
    """The hook a core reports to: keeps rows for SQLite, bounded per transfer."""

    def __init__(self, max_events: int) -> None:
        self.max_events = max_events
        self.pending: list[EventRow] = []
        self.count = 0
        self.dropped = 0
        # Core times are Trio's clock; stored times are Unix epoch seconds.
        self.offset_s = wall_clock_offset_s()

    def __call__(self, event: TransferEvent) -> None:
        # Beyond the cap only the rare, telling events are kept, and those up to a hard
        # bound (twice the cap), as the client does for its reports: exports stay bounded.
        beyond = self.count >= self.max_events
        if (beyond and event.kind in ROUTINE_KINDS) or self.count >= 2 * self.max_events:
            self.dropped += 1
            return
        self.count += 1
        self.pending.append(event_row(event, self.offset_s))

    def take(self) -> tuple[int, list[EventRow]]:
        rows, self.pending = self.pending, []
        return self.count - len(rows), rows


@dataclass
class PartialUpload:
    room: str
    name: str
    size: int
    sha256: str
    writer: BlobWriter
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    mss: int = 0
    app: UploadApp | None = None
    touched_s: float = 0.0
    finishing: bool = False  # being verified and stored: nobody may take it over

    @property
    def key(self) -> tuple[str, str, int, str]:
        return (self.room, self.name, self.size, self.sha256)

    def restart(self, blobs: BlobStore) -> None:
        """Empty it: the session could not resume (another chunk size, see
        ``Connection._negotiate``)."""
        self.writer.abort()
        self.writer = blobs.writer()
        self.hasher = hashlib.sha256()


class UploadApp:
    """Receives an upload into its partial; ``finish`` verifies and stores it."""

    def __init__(self, data: FileData, partial: PartialUpload, member: Member) -> None:
        self.data, self.partial, self.member = data, partial, member
        self.conn: Connection | None = None
        self.detached = False
        self.stored = False
        self._aligned = False

    def _align(self) -> None:
        """Before the first chunk: the partial must hold exactly what the handshake said
        (the resume point), or nothing when the session could not resume."""
        conn, partial = self.conn, self.partial
        assert conn is not None
        held = min(conn.resume_chunks * conn.mss, partial.size)
        if partial.writer.size != held:
            if held:
                raise StoreError(f"partial holds {partial.writer.size} bytes, not {held}")
            partial.restart(self.data.files.blobs)
        partial.mss = conn.mss
        self._aligned = True

    def write(self, chunks: list[bytes]) -> None:
        if self.detached:
            return  # a newer session took this partial over
        try:
            if not self._aligned:
                self._align()
            for chunk in chunks:
                self.partial.writer.write(chunk)
                self.partial.hasher.update(chunk)
        except StoreError:
            # The writer has deleted its temporary file: nothing is left to resume from.
            self.data.drop_partial(self.partial)
            raise
        self.partial.touched_s = trio.current_time()

    async def finish(self) -> None:
        if self.detached:  # a newer session owns the partial now: leave it alone
            raise LocalProtocolError(SUPERSEDED, "resumed by a newer session")
        partial = self.partial
        if partial.writer.size != partial.size or partial.hasher.hexdigest() != partial.sha256:
            self.data.drop_partial(partial)
            raise LocalProtocolError(BAD_DIGEST, "the received file does not match its SHA-256")
        partial.finishing = True
        try:
            await self.data.store_upload(partial, self.member)
        finally:
            partial.finishing = False
        self.stored = True
        conn = self.conn
        if conn is not None:  # the upload is stored now, though TIME_WAIT lingers on
            await self.data.files.finish_transfer(
                transfer_id_of(conn.session_id), "stored", time.time(), algo=conn.algo,
                codec=conn.codec.value,
            )  # fmt: skip


class DownloadApp:
    """Serves a stored blob chunk by chunk."""

    def __init__(self, fd: int, mss_of: Callable[[], int]) -> None:
        self.fd = fd
        self._mss_of = mss_of

    def read(self, seq: int) -> bytes:
        mss = self._mss_of()
        return os.pread(self.fd, mss, (seq - 1) * mss)

    def write(self, chunks: list[bytes]) -> None:
        raise StoreError("a download receives no data")

    async def finish(self) -> None:
        raise StoreError("a download stores nothing")

    def close(self) -> None:
        os.close(self.fd)


class FileData:
    def __init__(self, config: FilesConfig, files: FileStore, transport: DatagramTransport) -> None:
        self.config = config
        self.files = files
        self.transport = transport
        self.router = DatagramRouter(transport)
        self.limits = limits_from(config)
        self.partials: dict[tuple[str, str, int, str], PartialUpload] = {}
        self.store_lock = trio.Lock()  # blob commit + row update vs. deletion of blobs
        self._opening: list[tuple[str, str, Direction]] = []  # tickets being issued
        self.ticket_rates = KeyedBuckets(config.ticket_burst, config.ticket_refill_s)
        self._nursery: trio.Nursery | None = None

    @property
    def udp_port(self) -> int:
        return self.transport.local_address[1]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        await self._collect_garbage()
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                await nursery.start(self.router.run)
                nursery.start_soon(self._sweep_partials)
                nursery.start_soon(self._collect_garbage_regularly)
                task_status.started()
        finally:
            for partial in self.partials.values():
                partial.writer.abort()
            self.partials.clear()
            self.transport.close()

    # ------------------------------------------------------------------ opening sessions

    async def open_upload(self, member: Member, command: Upload) -> SessionTicket:
        self._take_ticket(member)
        room, name = member.code, command.name
        stored = {record.name for record in await self.files.list_files(room)}
        # No await from the checks to the reservation: concurrent UPLOADs see each other.
        self._check_capacity(room)
        if name not in stored:  # replacing a file always fits
            self._check_room_space(room, name, stored)
        with self._opening_ticket(room, name, Direction.UPLOAD):
            return await self._open_upload(member, command)

    async def _open_upload(self, member: Member, command: Upload) -> SessionTicket:
        partial = self._partial_for(member, command)
        app = UploadApp(self, partial, member)
        conn = self._connection(
            Direction.UPLOAD, member, command.name, size=command.size, sha256=command.sha256,
            source=None, resume_bytes=partial.writer.size, resume_mss=partial.mss,
        )  # fmt: skip
        app.conn = conn
        partial.app = app
        partial.touched_s = trio.current_time()
        try:
            session = await self._start(conn, app, member, command.name)
            if app.detached:  # a newer UPLOAD took the partial over while we registered
                _supersede(session)
        except BaseException:
            # No session will ever run: release the partial (an empty one is dropped), or
            # it could never expire nor be evicted and its name would stay BUSY.
            if partial.app is app:
                partial.app = None
                if partial.writer.size == 0:
                    self.drop_partial(partial)
            raise
        return SessionTicket(conn.session_id, self.udp_port, command.size, command.sha256)

    async def open_download(self, member: Member, name: str) -> SessionTicket:
        self._take_ticket(member)
        self._check_capacity(member.code)
        with self._opening_ticket(member.code, name, Direction.DOWNLOAD):
            return await self._open_download(member, name)

    async def _open_download(self, member: Member, name: str) -> SessionTicket:
        record = await self.files.get_file(member.code, name)
        if record is None:
            raise LocalProtocolError(NOT_FOUND, f"no file {name} in room {member.code}")
        try:
            fd = os.open(self.files.blobs.path(record.digest), os.O_RDONLY)
        except OSError as exc:
            raise LocalProtocolError("INTERNAL", f"cannot open the stored file: {exc}") from exc
        holder: list[Connection] = []
        app = DownloadApp(fd, lambda: holder[0].mss)
        conn = self._connection(
            Direction.DOWNLOAD,
            member,
            name,
            size=record.size,
            sha256=record.digest,
            source=app.read,
        )
        holder.append(conn)
        try:
            await self._start(conn, app, member, name)
        except BaseException:
            app.close()  # no session will ever run to close it
            raise
        return SessionTicket(conn.session_id, self.udp_port, record.size, record.digest)

    def _take_ticket(self, member: Member) -> None:
        """Tickets per user in a room are rate-limited: each can hold a session for a
        while and buys one event report (docs/SECURITY.md)."""
        wait = self.ticket_rates.take(f"{member.code}/{member.user}", trio.current_time())
        if wait:
            raise LocalProtocolError(RATE_LIMITED, f"too many transfers, retry in {wait:.1f} s")

    def _check_capacity(self, room: str) -> None:
        """Sessions running plus tickets being issued (between these checks and the
        session's registration: without them, concurrent requests all saw the old count)."""
        sessions = self.router.sessions.values()
        if len(sessions) + len(self._opening) >= self.config.max_sessions:
            raise LocalProtocolError(BUSY, "too many transfers in progress, try again later")
        in_room = sum(1 for s in sessions if s.conn.room == room)
        in_room += sum(1 for opening in self._opening if opening[0] == room)
        if in_room >= self.config.max_sessions_per_room:
            raise LocalProtocolError(BUSY, f"too many transfers in room {room}, try later")

    def _check_room_space(self, room: str, name: str, stored: set[str]) -> None:
        """A new name needs room for one more file beside the ``stored`` ones and every
        other new name being uploaded or issued a ticket."""
        uploading = {
            s.conn.filename for s in self.router.sessions.values()
            if s.conn.room == room and isinstance(s.app, UploadApp) and not s.app.stored
        } | {n for r, n, d in self._opening if r == room and d is Direction.UPLOAD}  # fmt: skip
        new_names = uploading - stored - {name}
        limit = self.config.max_files_per_room
        if len(stored) + len(new_names) >= limit:
            raise LocalProtocolError(
                ROOM_FULL, f"room {room} holds {limit} files, the most it may; delete one first"
            )

    @contextmanager
    def _opening_ticket(self, room: str, name: str, direction: Direction) -> Iterator[None]:
        """Count a ticket being issued until its session is registered (or refused)."""
        entry = (room, name, direction)
        self._opening.append(entry)
        try:
            yield
        finally:
            self._opening.remove(entry)

    def _partial_for(self, member: Member, command: Upload) -> PartialUpload:
        key = (member.code, command.name, command.size, command.sha256)
        for other in self.partials.values():
            same_name = (other.room, other.name) == (member.code, command.name)
            if same_name and other.key != key and other.app is not None:
                raise LocalProtocolError(BUSY, f"another upload of {command.name} is running")
        partial = self.partials.get(key)
        if partial is not None and partial.finishing:
            raise LocalProtocolError(BUSY, f"{command.name} is being stored, try again shortly")
        if partial is not None and partial.writer.closed:
            self.drop_partial(partial)  # its blob failed or was committed: nothing to resume
            partial = None
        if partial is not None:
            self._detach(partial)  # resume: a newer session takes over
            return partial
        if len(self.partials) >= self.config.max_partials:
            self._evict_oldest_partial()
        writer = self.files.blobs.writer()
        partial = PartialUpload(member.code, command.name, command.size, command.sha256, writer)
        self.partials[key] = partial
        return partial

    def _detach(self, partial: PartialUpload) -> None:
        app = partial.app
        if app is None:
            return
        app.detached = True
        partial.app = None
        for session in list(self.router.sessions.values()):
            if session.app is app:
                _supersede(session)

    def _evict_oldest_partial(self) -> None:
        idle = [p for p in self.partials.values() if p.app is None]
        if not idle:
            raise LocalProtocolError(BUSY, "too many unfinished uploads, try again later")
        self.drop_partial(min(idle, key=lambda p: p.touched_s))

    def drop_partial(self, partial: PartialUpload) -> None:
        if self.partials.get(partial.key) is partial:
            del self.partials[partial.key]
        partial.writer.abort()

    def _connection(
        self, direction: Direction, member: Member, name: str, *, size: int, sha256: str,
        source: Callable[[int], bytes] | None, resume_bytes: int = 0, resume_mss: int = 0,
    ) -> Connection:  # fmt: skip
        recorder = EventRecorder(self.config.max_events_per_transfer)
        return Connection(
            role=Role.SERVER, direction=direction, session_id=secrets.token_hex(16),
            room=member.code, filename=name, limits=self.limits, now=trio.current_time(),
            size=size, sha256=sha256, source=source, resume_bytes=resume_bytes,
            resume_mss=resume_mss, on_event=recorder,
        )  # fmt: skip

    async def _start(
        self, conn: Connection, app: UploadApp | DownloadApp, member: Member, name: str
    ) -> TransferSession:
        session = TransferSession(conn, self.transport, None, app, on_close=self.router.remove)
        record = TransferRecord(
            transfer_id_of(conn.session_id), member.code, name, conn.direction.value,
            member.user, conn.offer.algo, "json", conn.size, conn.sha256, time.time(), None,
            "open",
        )  # fmt: skip
        await self.files.start_transfer(record)
        self.router.add(session)
        self._nursery_or_fail().start_soon(self._run_session, session, member, record)
        log_event(logger, "transfer.open", id=record.id, room=member.code,
                  user=member.user, direction=conn.direction.value, file=name)  # fmt: skip
        return session

    def _nursery_or_fail(self) -> trio.Nursery:
        if self._nursery is None:
            raise LocalProtocolError(BUSY, "the file data service is not running")
        return self._nursery

    # ------------------------------------------------------------------ session lifetime

    async def _run_session(
        self, session: TransferSession, member: Member, record: TransferRecord
    ) -> None:
        recorder = session.conn.on_event
        assert isinstance(recorder, EventRecorder)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._flush_events_forever, record.id, recorder)
                await session.run()
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True):
                await self._close_session(session, member, record, recorder)

    async def _flush_events_forever(self, transfer_id: str, recorder: EventRecorder) -> None:
        while True:
            await trio.sleep(EVENT_FLUSH_S)
            await self._flush_events(transfer_id, recorder)

    async def _flush_events(self, transfer_id: str, recorder: EventRecorder) -> None:
        first, rows = recorder.take()
        if rows:
            try:
                await self.files.add_events(transfer_id, first, rows)
            except StoreError as exc:
                log_event(logger, "events.lost", logging.ERROR, id=transfer_id, reason=exc)

    async def _close_session(
        self, session: TransferSession, member: Member, record: TransferRecord,
        recorder: EventRecorder,
    ) -> None:  # fmt: skip
        conn, app = session.conn, session.app
        self.router.remove(session)
        status = _final_status(conn, app)
        if isinstance(app, DownloadApp):
            app.close()
        elif isinstance(app, UploadApp) and app.partial.app is app:
            app.partial.app = None  # kept for a resume until it expires ...
            if app.partial.writer.closed:  # ... unless its blob writer failed: nothing to keep
                self.drop_partial(app.partial)
        try:
            await self._flush_events(record.id, recorder)
            await self.files.finish_transfer(
                record.id, status, time.time(), algo=conn.algo, codec=conn.codec.value
            )
        except StoreError as exc:
            log_event(logger, "transfer.record_lost", logging.ERROR, id=record.id, reason=exc)
        stats = conn.stats
        log_event(logger, "transfer.close", id=record.id, room=member.code,
                  file=record.name, status=status, datagrams=stats.datagrams_in,
                  dropped=stats.dropped, rejected=stats.rejected)  # fmt: skip

    # ------------------------------------------------------------------ storing and deleting

    async def store_upload(self, partial: PartialUpload, member: Member) -> None:
        async with self.store_lock:
            digest = await self.run_disk(partial.writer.commit)
            record = FileRecord(
                partial.room, partial.name, digest, partial.size, member.user, time.time()
            )
            replaced = await self.files.put_file(record)
            if self.partials.get(partial.key) is partial:
                del self.partials[partial.key]
            if replaced and not await self.files.is_referenced(replaced):
                await self.run_disk(lambda: self.files.blobs.delete(replaced))
        log_event(logger, "file.stored", room=partial.room, file=partial.name,
                  size=partial.size, sha256=digest, user=member.user)  # fmt: skip

    async def delete(self, member: Member, name: str) -> None:
        async with self.store_lock:
            record = await self.files.delete_file(member.code, name)
            if record is None:
                raise LocalProtocolError(NOT_FOUND, f"no file {name} in room {member.code}")
            if not await self.files.is_referenced(record.digest):
                await self.run_disk(lambda: self.files.blobs.delete(record.digest))
        log_event(logger, "file.deleted", room=member.code, file=name, user=member.user)

    async def run_disk(self, fn: Callable[[], T]) -> T:
        """Blocking disk work (fsync, unlink): in a worker thread unless configured not to
        (virtual-time tests, where a thread would let the mock clock leap)."""
        if not self.config.disk_worker_thread:
            await trio.lowlevel.checkpoint()
            return fn()
        return await trio.to_thread.run_sync(fn)

    async def _collect_garbage_regularly(self) -> None:
        """An expired room's rows go with it (cascade), its files' blobs with this."""
        while True:
            await trio.sleep(GARBAGE_EVERY_S)
            try:
                await self._collect_garbage()
            except (StoreError, OSError) as exc:
                log_event(logger, "blobs.collect_failed", logging.ERROR, reason=exc)

    async def _collect_garbage(self) -> None:
        """Delete blobs no file refers to. The scan runs unlocked; each deletion re-checks
        under the store lock, so an upload of the same bytes stored meanwhile keeps its blob."""
        referenced = await self.files.referenced_digests()
        orphans = await self.run_disk(lambda: unreferenced_blobs(self.files.blobs, referenced))
        removed = 0
        for digest in orphans:
            async with self.store_lock:
                if await self.files.is_referenced(digest):
                    continue
                await self.run_disk(lambda d=digest: self.files.blobs.delete(d))  # type: ignore[misc]
            removed += 1
        if removed:
            log_event(logger, "blobs.collected", count=removed)

    async def _sweep_partials(self) -> None:
        while True:
            await trio.sleep(PARTIAL_SWEEP_S)
            horizon = trio.current_time() - self.config.partial_expiry_s
            for partial in list(self.partials.values()):
                if partial.app is None and partial.touched_s < horizon:
                    self.drop_partial(partial)


def _final_status(conn: Connection, app: object) -> str:
    if isinstance(app, UploadApp):
        return "stored" if app.stored else f"failed:{_code(conn)}"
    if conn.succeeded:
        return "delivered"
    sender = conn.sender
    if conn.failure and conn.failure[0] == UNCONFIRMED and sender is not None and sender.done:
        return "delivered"  # every chunk was acknowledged; only the close went unheard
    return f"failed:{_code(conn)}"


def _code(conn: Connection) -> str:
    """The reset reason a TRANSFER line shows. A peer's RST may carry any text: anything
    but a short upper-case word is recorded as ``ABORTED`` (clients print these fields)."""
    if conn.failure is None:
        return "CLOSED"
    code = conn.failure[0]
    plain = 0 < len(code) <= 24 and all(ch.isascii() and (ch.isupper() or ch == "_") for ch in code)
    return code if plain else ABORTED


def _supersede(session: TransferSession) -> None:
    """A newer UPLOAD resumed this session's partial: reset it (RST SUPERSEDED)."""
    session.conn.abort(SUPERSEDED, "resumed by a newer session", trio.current_time())
    session.wake()
