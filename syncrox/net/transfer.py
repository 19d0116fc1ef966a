"""The Trio edge of reliable-UDP transfers: one task owns a datagram transport and routes
each datagram to its session's core by ``session_id``; each session has its own task for
timers (``move_on_at(core.get_timer())``) and for the slow work of a receiver (verifying and
storing the file). Client and server share this code; only their ``TransferApp`` differs.

Theory of operation
-------------------
``DatagramRouter.run`` decodes each batch, feeds the datagrams to their cores, then flushes
every core it touched (ACKs and new DATA leave at once, without a task switch) and wakes the
session tasks. A session replies to the address its latest valid datagram came from, so a
client whose address changes keeps its transfer. Datagrams that do not decode, or that name
no session, are dropped and counted (with a log line at most once per ``LOG_EVERY``); a SYN
for an unknown session is answered with RST so a client learns its session is gone.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import trio

from syncrox.errors import RemoteProtocolError, SyncroxError
from syncrox.logs import log_event
from syncrox.net.datagram import Address, DatagramTransport
from syncrox.protocol.rudp.codec import decode_datagram, encode_json
from syncrox.protocol.rudp.connection import Connection, State
from syncrox.protocol.rudp.packets import Packet, PacketType

logger = logging.getLogger("syncrox.files")

LOG_EVERY = 1000
STALE_SESSION = "NO_SESSION"


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

    @property
    def session_id(self) -> str:
        return self.conn.session_id

    def feed(self, packet: Packet, address: Address, now: float) -> None:
        self.peer = address
        self.conn.receive(packet, now)

    def wake(self) -> None:
        self._wake.set()

    async def flush(self, now: float) -> None:
        ready = self.conn.take_ready()
        if ready:
            try:
                self.app.write(ready)
            except SyncroxError as exc:  # disk full, ...: refuse clearly, never half-store
                self.conn.abort(getattr(exc, "code", "STORE"), str(exc), now)
        datagrams = self.conn.datagrams_to_send(now)
        if self.peer is not None:
            for datagram in datagrams:
                await self.transport.send(datagram, self.peer)
        self._note_progress()

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
                if self.conn.state is State.FIN_RCVD and not self._finishing:
                    await self._finish()
                    continue
                deadline = self.conn.get_timer()
                with trio.move_on_at(math.inf if deadline is None else deadline):
                    await self._wake.wait()
                self._wake = trio.Event()
                now = trio.current_time()
                if deadline is not None and now >= deadline:
                    self.conn.handle_timer(now)
                await self.flush(now)
        finally:
            self.settled.set()
            self.established.set()
            self.closed.set()
            if self.on_close is not None:
                self.on_close(self)

    async def _finish(self) -> None:
        self._finishing = True
        try:
            await self.app.finish()
        except SyncroxError as exc:
            code = getattr(exc, "code", "REFUSED")
            self.conn.abort(code, str(exc), trio.current_time())
        else:
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
                session = await self._route(data, address, now)
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
                reset = Packet(PacketType.RST, packet.session_id, error=STALE_SESSION)
                await self.transport.send(encode_json(reset), address)
            return None
        session.feed(packet, address, now)
        return session
