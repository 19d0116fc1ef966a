"""Trio client of the collaborative editor (TCP 9011): a local replica kept in sync.

::

    client = CollabClient(tcp_connector(host, port), room="4821", user="alice",
                          language="python")
    async with trio.open_nursery() as nursery:
        await nursery.start(client.run)      # connected, admitted, opened and synced
        shown = client.view()                # what to display
        client.edit(shown.replace("Hello", "Hi"))   # what the user made of it
        await client.flush()                 # the server has stored it

``run`` connects, sends its state vector (sync step 1), applies the server's answer (step
2) and answers the server's step 1 with everything the server lacks; then local changes go
out as they are made (several per frame when they pile up) and remote ones are applied as
they arrive. When the connection fails it reconnects with exponential backoff and resyncs
by state vector, so edits made offline are sent then and nothing is lost. A refusal that
will not change by retrying (wrong token, no such room) ends ``run`` with
``RequestRefused``; so does any failure of the first connection.

If the server refuses one of our changes (too large, malformed), the replica holds text the
server will never have; it is then reset from the server (the refused change and any other
unsent change are dropped), and ``flush`` raises ``RequestRefused`` with the reason.

The replica logic (edits, diffing, acknowledgements, awareness) is ``collab_replica``;
this module only moves its bytes. Timeouts belong to the caller (``trio.fail_after``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

from syncrox.client.collab_replica import Replica
from syncrox.client.lines import DEFAULT_MAX_LINE_BYTES
from syncrox.client.rooms import checked
from syncrox.errors import (
    BAD_COMMAND,
    BUSY,
    INTERNAL,
    RATE_LIMITED,
    TIMEOUT,
    TOO_LARGE,
    TOO_MANY_ERRORS,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    RequestRefused,
)
from syncrox.logs import log_event
from syncrox.net.lines import LineConnection
from syncrox.net.tcp import format_peer
from syncrox.protocol import collab as proto
from syncrox.protocol.framing import parse_error
from syncrox.protocol.names import validate_room_code, validate_token, validate_user

logger = logging.getLogger("syncrox.client.collab")

Connector = Callable[[], Awaitable[trio.abc.Stream]]

MAX_FRAME_BYTES = 64 * 1024 * 1024  # what we accept from a server in one frame
MAX_FRAME_MESSAGES = 1 << 20
HANDSHAKE_TIMEOUT_S = 10.0
# Refusals that retrying will not cure end ``run``; the others make it reconnect.
RETRYABLE = frozenset({BUSY, RATE_LIMITED, INTERNAL, TIMEOUT, TOO_MANY_ERRORS, "OVERFLOW"})
# An ERR with one of these codes, once the document is open, means a change of ours was
# refused: the replica has diverged from the server.
DIVERGED = frozenset({proto.BAD_UPDATE, proto.DOC_TOO_LARGE, proto.BAD_MESSAGE, TOO_LARGE})
# Refusals of our awareness state: the document is unaffected, so they are only logged.
NOTICES = frozenset({proto.BAD_AWARENESS})


def tcp_connector(host: str, port: int) -> Connector:
    async def connect() -> trio.abc.Stream:
        return await trio.open_tcp_stream(host, port)

    return connect


class _Diverged(Exception):
    """The server refused a change of ours; the connection must restart from scratch."""


class CollabClient:
    def __init__(
        self,
        connect: Connector,
        *,
        language: str,
        room: str | None = None,
        user: str | None = None,
        token: str | None = None,
        client_id: int | None = None,
        reconnect_min_s: float = 0.05,
        reconnect_max_s: float = 2.0,
        awareness_renew_s: float = 15.0,
        typing_idle_s: float = 3.0,
        send_timeout_s: float = 10.0,
    ) -> None:
        if token is None and (room is None or user is None):
            raise LocalProtocolError("BAD_ARGUMENT", "give a token, or a room and a user")
        self._connect = connect
        self.language = proto.parse_language(language)
        self.room, self.user, self.token = room, user, token
        self.replica = Replica(client_id=client_id)
        self.reconnect_min_s, self.reconnect_max_s = reconnect_min_s, reconnect_max_s
        self.awareness_renew_s = awareness_renew_s
        self.typing_idle_s = typing_idle_s
        self.send_timeout_s = send_timeout_s
        self.connected = False
        self.connections = 0  # successful handshakes so far
        self.refusals: list[RequestRefused] = []
        self.max_messages = 1024
        self._listeners: list[Callable[[], None]] = []
        self._lot = trio.lowlevel.ParkingLot()  # wakes the writer
        self._progress = trio.lowlevel.ParkingLot()  # wakes flush / sync / wait_changed
        self.version = 0  # bumped on every change of the text or of the peers
        self._task_status: trio.TaskStatus[None] | None = None
        self._reset_session()

    def _reset_session(self) -> None:
        self._live = False  # our step 2 has gone out: updates may follow
        self._want_step1 = True
        self._server_state: bytes | None = None  # the server's step 1, to answer
        self._awareness_dirty = True
        self._frames = 0
        self._covers: dict[int, int] = {}  # frame number -> local seq it covers
        self._asked = self._answered = 0  # our step 1s and the server's step 2s
        self._last_awareness = trio.current_time()
        self._last_edit = -1.0

    # ------------------------------------------------------------------ the replica

    @property
    def text(self) -> str:
        return self.replica.text

    def view(self) -> str:
        return self.replica.view()

    def edit(self, new_text: str) -> int:
        """The user turned the last ``view()`` into ``new_text``."""
        count = self.replica.edit(new_text)
        self._local_change()
        return count

    def replace(self, start: int, end: int, text: str) -> None:
        self.replica.replace(start, end, text)
        self._local_change()

    def insert(self, index: int, text: str) -> None:
        self.replace(index, index, text)

    def delete(self, start: int, end: int) -> None:
        self.replace(start, end, "")

    def set_cursor(self, anchor: int, head: int | None = None) -> None:
        self.replica.set_awareness(
            cursor={"anchor": anchor, "head": anchor if head is None else head}
        )
        self._awareness_changed()

    def set_awareness(self, **fields: Any) -> None:
        self.replica.set_awareness(**fields)
        self._awareness_changed()

    def members(self) -> list[str]:
        return self.replica.members()

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` after every remote change is applied."""
        self._listeners.append(callback)

    def _local_change(self) -> None:
        self._last_edit = trio.current_time()
        if not self.replica.awareness.get("typing"):
            self.replica.set_awareness(typing=True)
            self._awareness_dirty = True
        self._changed()
        self._lot.unpark_all()

    def _awareness_changed(self) -> None:
        self._awareness_dirty = True
        self._lot.unpark_all()

    def _changed(self) -> None:
        self.version += 1
        self._progress.unpark_all()

    # ------------------------------------------------------------------ waiting

    async def wait_changed(self, version: int) -> int:
        """Wait until ``self.version`` differs from ``version``; return it."""
        while self.version == version:
            await self._progress.park()
        return self.version

    async def flush(self) -> None:
        """Wait until the server has stored every local change made so far. Raises
        ``RequestRefused`` if the server refused one of them meanwhile."""
        target, refused = self.replica.local_seq, len(self.refusals)
        while self.replica.acked_seq < target and len(self.refusals) == refused:
            await self._progress.park()
        if len(self.refusals) > refused:
            raise self.refusals[-1]

    async def sync(self) -> None:
        """Ask the server for everything we lack and wait until it is applied."""
        while True:
            while not self.connected:
                await self._progress.park()
            connection, self._asked = self.connections, self._asked + 1
            target = self._asked
            self._want_step1 = True
            self._lot.unpark_all()
            while self.connections == connection and self.connected and self._answered < target:
                await self._progress.park()
            if self.connections == connection and self._answered >= target:
                return

    # ------------------------------------------------------------------ the connection

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Stay connected and in sync until cancelled (see the module docstring)."""
        self._task_status = task_status
        delay = self.reconnect_min_s
        while True:
            try:
                async with self._connection() as conn:
                    delay = self.reconnect_min_s
                    await self._session(conn)
            except _Diverged:
                self.replica.reset()
                if not self.started:
                    raise self.refusals[-1] from None
            except RequestRefused as exc:
                if not self.started or exc.code not in RETRYABLE:
                    raise
                self._note_failure(exc)
            except (
                OSError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
                trio.TooSlowError,  # the handshake's deadline: a slow reconnect is retried
                ProtocolError,
            ) as exc:
                if not self.started:
                    raise
                self._note_failure(exc)
            finally:
                self.connected = False
                self.replica.peers.clear()
                self._changed()
            await trio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max_s)

    @property
    def started(self) -> bool:
        """Whether the first sync has completed (``run`` then reconnects on failures)."""
        return self._task_status is None

    def _synced(self) -> None:
        if self._task_status is not None:
            self._task_status.started()
            self._task_status = None

    def _note_failure(self, exc: BaseException) -> None:
        log_event(logger, "collab.reconnect", logging.DEBUG, reason=str(exc) or type(exc).__name__)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[LineConnection]:
        stream = await self._connect()
        peer = "?"
        if isinstance(stream, trio.SocketStream):
            peer = format_peer(stream.socket.getpeername())
        conn = LineConnection(
            stream,
            max_line_bytes=DEFAULT_MAX_LINE_BYTES,
            peer=peer,
            send_timeout_s=self.send_timeout_s,
        )
        async with stream:
            with trio.fail_after(HANDSHAKE_TIMEOUT_S):
                await self._handshake(conn)
            yield conn

    async def _handshake(self, conn: LineConnection) -> None:
        if self.room is not None and self.user is not None:
            user = checked(validate_user, self.user)
            line = f"HELLO {user} {checked(validate_room_code, self.room)}"
            if self.token:
                line += f" {checked(validate_token, self.token)}"
        else:
            line = f"AUTH {checked(validate_token, self.token or '')}"
        welcome = await self._request(conn, line)
        if not isinstance(welcome, proto.Welcome):
            raise RemoteProtocolError(BAD_COMMAND, "expected OK HELLO")
        self.room, self.user = welcome.room, welcome.user
        opened = await self._request(conn, f"OPEN {self.language}")
        if not isinstance(opened, proto.Opened):
            raise RemoteProtocolError(BAD_COMMAND, "expected OPENED")
        self.replica.max_document_bytes = opened.max_document_bytes
        self.replica.max_update_bytes = opened.max_update_bytes
        self.max_messages = max(1, opened.max_messages - 2)  # leave room for step 1, awareness

    async def _request(self, conn: LineConnection, line: str) -> proto.ServerLine:
        await conn.send_line(line)
        reply = await conn.receive_line()
        if reply is None:
            raise RemoteProtocolError(BAD_COMMAND, "the server closed the connection")
        error = parse_error(reply)
        if error is not None:
            raise RequestRefused(*error)
        return proto.parse_server_line(reply, max_frame_bytes=MAX_FRAME_BYTES)

    async def _session(self, conn: LineConnection) -> None:
        """Serve one connection until it fails; raise what ended it."""
        self._reset_session()
        self.connected = True
        self.connections += 1
        self._asked = 1  # the step 1 every session starts with
        failure: list[BaseException] = []

        async def guarded(task: Callable[[], Awaitable[None]], scope: trio.CancelScope) -> None:
            # Expected failures end the session as one plain exception, not a group.
            try:
                await task()
            except (
                _Diverged,
                ProtocolError,
                OSError,
                trio.BrokenResourceError,
                trio.ClosedResourceError,
            ) as exc:
                failure.append(exc)
            finally:
                scope.cancel()

        async with trio.open_nursery() as nursery:
            for task in (
                functools.partial(self._reader, conn),
                functools.partial(self._writer, conn),
                self._ticker,
            ):
                nursery.start_soon(guarded, task, nursery.cancel_scope)
        raise failure[0] if failure else trio.ClosedResourceError("session ended")

    # ------------------------------------------------------------------ reading

    async def _reader(self, conn: LineConnection) -> None:
        while True:
            line = await conn.receive_line()
            if line is None:
                raise trio.BrokenResourceError("the server closed the connection")
            error = parse_error(line)
            if error is not None:
                self._on_error(*error)
                continue
            match proto.parse_server_line(line, max_frame_bytes=MAX_FRAME_BYTES):
                case proto.FrameHeader(size):
                    self._on_frame(await conn.receive_body(size))
                    if self._answered:
                        self._synced()
                case proto.Ack(frames):
                    self._on_ack(frames)
                case _:
                    pass  # PONG and the like: nothing to do

    def _on_error(self, code: str, text: str) -> None:
        log_event(logger, "collab.refused", logging.WARNING, code=code, reason=text)
        refusal = RequestRefused(code, text)
        if code in DIVERGED:
            self.refusals.append(refusal)
            self._changed()
            raise _Diverged(text)
        if code not in RETRYABLE and code not in NOTICES:
            raise refusal

    def _on_frame(self, body: bytes) -> None:
        changed = False
        for message in proto.decode_frame(body, max_messages=MAX_FRAME_MESSAGES):
            match message:
                case proto.SyncUpdate(update):
                    self.replica.apply_remote(update)
                    changed = True
                case proto.SyncStep2(update):
                    self.replica.apply_remote(update)
                    self._answered += 1
                    changed = True
                case proto.SyncStep1(state_vector):
                    self._server_state = state_vector
                    self._lot.unpark_all()
                case proto.AwarenessUpdate(entries):
                    self.replica.apply_awareness(entries)
                    changed = True
                case proto.QueryAwareness():
                    self._awareness_changed()
        if changed:
            for listener in self._listeners:
                listener()
            self._changed()

    def _on_ack(self, frames: int) -> None:
        for frame in [frame for frame in self._covers if frame <= frames]:
            self.replica.acked_seq = max(self.replica.acked_seq, self._covers.pop(frame))
        self._changed()

    # ------------------------------------------------------------------ writing

    async def _writer(self, conn: LineConnection) -> None:
        while True:
            messages, covers = self._next_frame()
            if not messages:
                await self._lot.park()
                continue
            self._frames += 1
            if covers:
                self._covers[self._frames] = covers
            await conn.send(proto.encode_frame(messages))

    def _next_frame(self) -> tuple[list[bytes], int]:
        """The messages of the next frame and the local seq it covers (0: none)."""
        messages: list[bytes] = []
        covers = 0
        if self._want_step1:
            self._want_step1 = False
            messages.append(proto.encode_message(proto.SyncStep1(self.replica.state_vector())))
        if self._server_state is not None:
            step2 = self.replica.diff(self._server_state)
            self._server_state = None
            if len(step2) + 16 > self.replica.max_update_bytes:
                self.refusals.append(
                    RequestRefused(TOO_LARGE, "offline changes exceed the server's update limit")
                )
                raise _Diverged("offline changes too large")
            covers = self.replica.take_everything()
            messages.append(proto.encode_message(proto.SyncStep2(step2)))
            self._live = True
        elif self._live and self.replica.outgoing:
            updates, covers = self.replica.take_outgoing(
                self.max_messages, self.replica.max_update_bytes
            )
            messages += [proto.encode_update(update) for update in updates]
        if self._awareness_dirty:
            self._awareness_dirty = False
            self._last_awareness = trio.current_time()
            entry = self.replica.renew_awareness()
            messages.append(proto.encode_message(proto.AwarenessUpdate((entry,))))
        return messages, covers

    async def _ticker(self) -> None:
        """Renew our awareness state before the server expires it; clear "typing"."""
        while True:
            now = trio.current_time()
            if self.replica.awareness.get("typing") and now - self._last_edit >= self.typing_idle_s:
                self.replica.set_awareness(typing=False)
                self._awareness_changed()
            if now - self._last_awareness >= self.awareness_renew_s:
                self._awareness_changed()
            await trio.sleep(min(self.typing_idle_s, self.awareness_renew_s) / 2)
