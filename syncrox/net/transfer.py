"""The Trio edge of reliable-UDP transfers: one task owns a datagram transport and routes
each datagram to its session's core by ``session_id``; each session has its own task for
timers (``move_on_at(core.get_timer())``) and for the slow work of a receiver (verifying and
storing the file). Client and server share this code; only their ``TransferApp`` differs.

Theory of operation
-------------------
``DatagramRouter.run`` decodes each batch, feeds the datagrams to their cores, then flushes
every core it touched (ACKs and new DATA leave at once, without a task switch) and wakes the
session tasks. A session replies to the address of the latest datagram its core *accepted*
(``Connection.receive`` returns ``True``: a chunk of the file, an ACK of data in flight, a
first handshake step, ...), so a client whose address changes (NAT rebinding) keeps its
transfer, while a forged or stray datagram that only carries a known session id cannot
redirect the replies. Datagrams that do not decode, or that name no session, are dropped and
counted (with a log line at most once per ``LOG_EVERY``). A SYN for an unknown session is
answered with RST ``NO_SESSION``, so a client learns its session is gone, but only when that
RST is no larger than the SYN: UDP source addresses are not authenticated, and the server
must never send a spoofed victim more bytes than the spoofer sent (no amplification).

One session's failure never ends the router or another session: an exception from a core
or an app (a disk error, a bug) ends that session alone with RST (``STORE`` for a failed
write, ``INTERNAL`` for anything unexpected, whose traceback is logged), and a send that
fails is dropped as UDP would drop it.

Core times are Trio's clock (``trio.current_time()``, whose origin is arbitrary);
``wall_clock_offset_s`` turns them into Unix epoch seconds for anything exported.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from syncrox.errors import INTERNAL, ProtocolError, RemoteProtocolError, SyncroxError
from syncrox.logs import log_event
from syncrox.net.datagram import Address, DatagramTransport
from syncrox.protocol.files import transfer_id_of
from syncrox.protocol.rudp.codec import decode_datagram, encode_json
from syncrox.protocol.rudp.connection import REFUSED, STORE, Connection, State
from syncrox.protocol.rudp.packets import Packet, PacketType

logger = logging.getLogger("syncrox.files")

LOG_EVERY = 1000
STALE_SESSION = "NO_SESSION"


def wall_clock_offset_s() -> float:
    """Add this to a core's time (Trio's clock) to get Unix epoch seconds."""
    return time.time() - trio.current_time()


class TransferApp(Protocol):
    """What a session's owner does with the data: read chunks (sender), write them and
    finally verify and store the file (receiver)."""

    def write(self, chunks: list[bytes]) -> None: ...

    async def finish(self) -> None:
        """Verify and store; raise ``SyncroxError`` (with ``code``) to refuse the file."""


@dataclass
class RouterStats:
    datagrams: int = 0
    undecodable: int = 0
    unknown_session: int = 0
    resets_sent: int = 0  # NO_SESSION answers to SYNs for unknown sessions
    send_errors: int = 0


class TransferSession:
    def __init__(
        self,
        conn: Connection,
        transport: DatagramTransport,
        peer: Address | None,
        app: TransferApp,
        *,
        on_close: Callable[[TransferSession], None] | None = None,
    ) -> None:
        self.conn = conn
        self.transport = transport
        self.peer = peer
        self.app = app
        self.on_close = on_close
        self.established = trio.Event()  # left the handshake (or failed)
        self.settled = trio.Event()  # the outcome is known: stored, refused or failed
        self.closed = trio.Event()  # the core is terminal and its task has ended
        self._wake = trio.Event()
        self._finishing = False
        self.send_errors = 0

    @property
    def session_id(self) -> str:
        return self.conn.session_id

    def feed(self, packet: Packet, address: Address, now: float) -> None:
        try:
            accepted = self.conn.receive(packet, now)
        except Exception as exc:  # a bug in the core: it ends this session, not the router
            self.fail(exc, now)
            return
        if accepted:
            # Only a datagram the core found valid for its state may move our replies.
            self.peer = address

    def wake(self) -> None:
        self._wake.set()

    async def flush(self, now: float) -> None:
        datagrams = self._output(now)
        if self.peer is not None:
            for datagram in datagrams:
                await self._send(datagram, self.peer)
        self._note_progress()

    def _output(self, now: float) -> list[bytes]:
        try:
            ready = self.conn.take_ready()
            if ready:
                try:
                    self.app.write(ready)
                except SyncroxError as exc:  # disk full, ...: refuse clearly, never half-store
                    self.conn.abort(_code(exc, STORE), str(exc), now)
            return self.conn.datagrams_to_send(now)
        except Exception as exc:
            self.fail(exc, now)
        try:
            return self.conn.datagrams_to_send(now)  # the RST that tells the peer why
        except Exception:  # the core is beyond telling anyone; it is terminal anyway
            logger.exception("transfer.crash_again")
            return []

    async def _send(self, datagram: bytes, address: Address) -> None:
        try:
            await self.transport.send(datagram, address)
        except OSError as exc:  # lost, as UDP may lose it; timers and retries recover
            self.send_errors += 1
            if self.send_errors == 1:  # once per session: a dead route fails every send
                log_event(logger, "datagram.send_failed", logging.WARNING, peer=address,
                          reason=exc.strerror or exc)  # fmt: skip

    def fail(self, exc: Exception, now: float) -> None:
        """End this session after an exception nothing handled (expected failures, a disk
        error or a refused file, are answered with ``STORE`` / ``REFUSED`` before they get
        here): it is a bug, or a local file that changed under us. The peer gets RST
        ``INTERNAL``, the traceback is logged, and the router and other sessions go on."""
        logger.exception("transfer.crash id=%s room=%s", transfer_id_of(self.session_id),
                         self.conn.room, exc_info=exc)  # fmt: skip
        self.conn.abort(INTERNAL, f"internal error: {type(exc).__name__}: {exc}", now)
        self.wake()

    def _note_progress(self) -> None:
        state = self.conn.state
        if state not in (State.IDLE, State.SYN_SENT, State.SYN_RCVD):
            self.established.set()
        if self.conn.terminal or state is State.TIME_WAIT:
            self.settled.set()
        if self.conn.sends_data and state is State.FIN_SENT and self.conn.terminal:
            self.settled.set()

    async def run(self) -> None:
        """Timers and the receiver's final step, until the core is terminal."""
        try:
            while not self.conn.terminal:
                try:
                    await self._step()
                except Exception as exc:  # one session's failure ends only this session
                    self.fail(exc, trio.current_time())
                    await self.flush(trio.current_time())
        finally:
            self.settled.set()
            self.established.set()
            self.closed.set()
            if self.on_close is not None:
                self.on_close(self)

    async def _step(self) -> None:
        if self.conn.state is State.FIN_RCVD and not self._finishing:
            await self._finish()
            return
        deadline = self.conn.get_timer()
        with trio.move_on_at(math.inf if deadline is None else deadline):
            await self._wake.wait()
        self._wake = trio.Event()
        now = trio.current_time()
        if deadline is not None and now >= deadline:
            self.conn.handle_timer(now)
        await self.flush(now)

    async def _finish(self) -> None:
        self._finishing = True
        try:
            await self.app.finish()
        except SyncroxError as exc:
            self.conn.abort(_code(exc, REFUSED), str(exc), trio.current_time())
        else:
            # The peer may have reset the session while the file was being stored: it is
            # stored all the same, and there is nobody left to acknowledge.
            if not self.conn.terminal:
                self.conn.commit(trio.current_time())
        await self.flush(trio.current_time())

    async def abort(self, code: str, text: str) -> None:
        self.conn.abort(code, text, trio.current_time())
        await self.flush(trio.current_time())
        self.wake()


class DatagramRouter:
    """Owns one transport; routes datagrams to sessions by ``session_id``."""

    def __init__(self, transport: DatagramTransport, *, answer_unknown: bool = True) -> None:
        self.transport = transport
        self.sessions: dict[str, TransferSession] = {}
        self.stats = RouterStats()
        self.answer_unknown = answer_unknown

    def add(self, session: TransferSession) -> None:
        self.sessions[session.session_id] = session

    def remove(self, session: TransferSession) -> None:
        if self.sessions.get(session.session_id) is session:
            del self.sessions[session.session_id]

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            batch = await self.transport.receive_batch()
            now = trio.current_time()
            touched: dict[str, TransferSession] = {}
            for data, address in batch:
                try:
                    session = await self._route(data, address, now)
                except Exception:  # a decoder bug any peer could hit must not stop the router
                    logger.exception("datagram.crash peer=%s", address)
                    continue
                if session is not None:
                    touched[session.session_id] = session
            for session in touched.values():
                await session.flush(now)
                session.wake()

    async def _route(self, data: bytes, address: Address, now: float) -> TransferSession | None:
        self.stats.datagrams += 1
        try:
            packet = decode_datagram(data)
        except RemoteProtocolError as exc:
            self.stats.undecodable += 1
            if self.stats.undecodable % LOG_EVERY == 1:
                log_event(logger, "datagram.bad", logging.WARNING, peer=address,
                          reason=exc.message, count=self.stats.undecodable)  # fmt: skip
            return None
        session = self.sessions.get(packet.session_id)
        if session is None:
            self.stats.unknown_session += 1
            if self.stats.unknown_session % LOG_EVERY == 1:
                log_event(logger, "datagram.unknown_session", logging.WARNING, peer=address,
                          count=self.stats.unknown_session)  # fmt: skip
            if self.answer_unknown and packet.type is PacketType.SYN:
                await self._reset(packet, data, address)
            return None
        session.feed(packet, address, now)
        return session

    async def _reset(self, syn: Packet, data: bytes, address: Address) -> None:
        """Tell a client its session is gone, unless that would reflect more bytes to an
        unauthenticated source address than it sent (a real client's SYN carries its room
        and file name, so it is always larger than the RST)."""
        reset = encode_json(Packet(PacketType.RST, syn.session_id, error=STALE_SESSION))
        if len(reset) > len(data):
            return  # counted in unknown_session; silence costs a real client only time
        self.stats.resets_sent += 1
        try:
            await self.transport.send(reset, address)
        except OSError:
            self.stats.send_errors += 1


def _code(exc: SyncroxError, default: str) -> str:
    return exc.code if isinstance(exc, ProtocolError) else default
