"""Collaborative editor, TCP 9011: moves frames between sockets and the live documents.

A connection proves membership first (``HELLO <user> <room> [<token>]`` or ``AUTH <token>``,
checked by the room registry) and holds a presence in that room while open. It may then
``OPEN`` one document of that room: documents are keyed by ``(room, language)``, so a
connection can never read or write another room's documents. After ``OPENED`` the
connection exchanges ``YMSG`` frames of y-protocols messages; the grammar is
``syncrox.protocol.collab``, the document logic ``syncrox.protocol.collab_doc`` and the
batching, persistence and relaying ``syncrox.services.collab_docs``.

Each connection runs two tasks: this reader, which parses frames and queues them for the
document (waiting while the document's inbox is full), and a writer draining the
connection's ``Outbox`` (relays, sync answers, ``ACK`` and refusals from the document).
Replies to the reader's own requests are sent directly; both paths send whole messages
under the connection's lock, so they never interleave.

Decision: one document per connection. A client that edits two languages opens two
connections; it keeps frame numbering (``ACK``) and ordering trivially unambiguous.
"""

from __future__ import annotations

import functools
import itertools
import logging
from contextlib import AsyncExitStack

import trio

from syncrox.config import CollabConfig
from syncrox.errors import (
    BAD_ARGUMENT,
    INTERNAL,
    NOT_MEMBER,
    RATE_LIMITED,
    TIMEOUT,
    LocalProtocolError,
    RemoteProtocolError,
    StoreError,
)
from syncrox.logs import log_event
from syncrox.net.lines import LineConnection
from syncrox.net.tcp import line_loop, serve_tcp
from syncrox.protocol import collab as proto
from syncrox.ratelimit import TokenBucket
from syncrox.services.collab_docs import DocumentHub, Inbound, LiveDocument, Subscriber
from syncrox.services.collab_outbox import Outbox, OutboxClosed
from syncrox.services.context import BoundPorts, ServiceContext
from syncrox.services.registry import Member

logger = logging.getLogger("syncrox.collab")
# Entries in one awareness update from a client. A connection owns at most a few client
# ids (collab.max_awareness_clients_per_connection); each entry costs a check and, when
# refused, an answer: one crafted 2 MiB frame held ~290 000 and stalled the server 10 s.
MAX_AWARENESS_ENTRIES = 32


def _awareness_entries(message: proto.YMessage) -> int:
    return len(message.entries) if isinstance(message, proto.AwarenessUpdate) else 0


async def serve(
    ctx: ServiceContext, *, task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED
) -> None:
    async with trio.open_nursery() as nursery:
        service = CollabService(ctx, nursery)
        port = await nursery.start(
            functools.partial(
                serve_tcp,
                service.handle_connection,
                service="collab",
                host=ctx.config.host,
                port=ctx.config.ports.collab,
                limits=ctx.config.tcp,
            )
        )
        task_status.started({"collab": port})


class CollabService:
    """State shared by every collab connection: the live documents."""

    def __init__(self, ctx: ServiceContext, nursery: trio.Nursery) -> None:
        self.ctx = ctx
        self.config = ctx.config.collab
        self.hub = DocumentHub(ctx.store.collab, self.config, nursery)
        self._keys = itertools.count(1)

    async def handle_connection(self, conn: LineConnection) -> None:
        """Serve one connection until it ends (also the seam tests drive directly)."""
        await CollabSession(self, conn, next(self._keys)).run()


class CollabSession:
    def __init__(self, service: CollabService, conn: LineConnection, key: int) -> None:
        self.service = service
        self.ctx = service.ctx
        self.config: CollabConfig = service.config
        self.conn = conn
        self.key = key
        self.member: Member | None = None
        self.document: LiveDocument | None = None
        self.subscriber: Subscriber | None = None
        self.outbox = Outbox(self.config.outbox_max_bytes)
        self.frames = 0  # YMSG frames received since OPENED (what ACK counts)
        self.awareness_budget = TokenBucket.full(
            self.config.awareness_burst, self.config.awareness_refill_s, trio.current_time()
        )
        self._stack = AsyncExitStack()
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                async with self._stack:
                    await line_loop(self.conn, self.ctx.config.tcp, self.handle_line, logger)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                # Caught here, inside the nursery: escaping it, a reset would arrive at the
                # TCP server wrapped in an ExceptionGroup and be logged as a crash.
                log_event(logger, "collab.disconnect", peer=self.conn.peer, reason="reset")
            finally:
                self.outbox.close()  # the writer sends what is queued, then ends

    async def _write(self) -> None:
        reason = "closed"
        try:
            await self.outbox.run(self.conn)
        except OutboxClosed as exc:
            reason = exc.reason.lower()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            reason = "reset"
        finally:
            if reason != "closed":
                log_event(logger, "collab.disconnect", peer=self.conn.peer, reason=reason)
            assert self._nursery is not None
            self._nursery.cancel_scope.cancel()  # nothing more can reach the client

    # ------------------------------------------------------------------ requests

    async def handle_line(self, line: str) -> bool:
        command = proto.parse_collab_command(line, max_frame_bytes=self.config.max_update_bytes)
        match command:
            case proto.FrameHeader(size):
                await self._frame(size)
                return True
            case proto.Open(language):
                await self._open(language)
                return True
            case proto.Hello(user, room, token):
                member = await self.ctx.rooms.admit(room, user, self.conn.peer_host, token)
                reply = await self._enter(member)
            case proto.Auth(token):
                reply = await self._enter(
                    await self.ctx.rooms.admit_token(token, self.conn.peer_host)
                )
            case proto.Langs():
                reply = proto.format_langs()
            case proto.Ping():
                reply = "PONG"
            case proto.Bye():
                reply = "OK BYE"
        await self.conn.send_line(reply)
        return not isinstance(command, proto.Bye)

    async def _enter(self, member: Member) -> str:
        if self.member is not None and self.member.code != member.code:
            raise LocalProtocolError(NOT_MEMBER, "this connection already belongs to a room")
        if self.member is None:
            await self._stack.enter_async_context(self.ctx.rooms.presence(member))
        self.member = member
        log_event(logger, "collab.hello", peer=self.conn.peer, room=member.code, user=member.user)
        return proto.format_hello(member.code, member.user)

    def _admitted(self) -> Member:
        if self.member is None:
            raise LocalProtocolError(NOT_MEMBER, "say HELLO <user> <room> [<token>] first")
        return self.member

    async def _open(self, language: str) -> None:
        member = self._admitted()
        if self.document is not None:
            raise LocalProtocolError(
                BAD_ARGUMENT, "a connection opens one document; use another connection"
            )
        try:
            doc = await self.service.hub.acquire(member.code, language)
        except StoreError as exc:
            log_event(logger, "doc.open_failed", logging.ERROR, room=member.code, reason=str(exc))
            raise LocalProtocolError(INTERNAL, "the document cannot be loaded") from None
        self._stack.callback(self.service.hub.release, doc)
        opened = proto.format_opened(
            language,
            self.config.max_document_bytes,
            self.config.max_update_bytes,
            self.config.max_messages_per_frame,
        )
        # Subscribed before the await below: a document that fails meanwhile then drops
        # this connection with the others (its outbox is failed), never leaves it attached
        # to a dead document with no answer ever coming.
        subscriber = Subscriber(self.key, member.user, self.conn.peer, self.outbox)
        doc.subscribe(subscriber)
        self._stack.callback(doc.unsubscribe, subscriber)
        self.document, self.subscriber = doc, subscriber
        await self.conn.send_line(opened)
        if doc.dead:
            raise LocalProtocolError(INTERNAL, "the document failed; reconnect", fatal=True)
        assert self._nursery is not None
        self._nursery.start_soon(self._write)
        log_event(
            logger, "doc.open", peer=self.conn.peer, room=member.code, user=member.user,
            lang=language, clients=doc.users,
        )  # fmt: skip

    async def _frame(self, size: int) -> None:
        body = await self._body(size)
        self._admitted()  # NOT_MEMBER before admission, as documented
        if self.document is None or self.subscriber is None:
            raise LocalProtocolError(proto.NOT_OPEN, "OPEN <lang> a document first")
        self.frames += 1
        messages = proto.decode_frame(
            body,
            max_messages=self.config.max_messages_per_frame,
            max_awareness_entries=MAX_AWARENESS_ENTRIES,
        )
        allowed = self._within_awareness_budget(messages)
        if not allowed:
            messages = [m for m in messages if not isinstance(m, proto.AwarenessUpdate)]
        if messages:
            await self.document.submit(Inbound(self.subscriber, self.frames, messages, size))
        if not allowed:
            raise LocalProtocolError(RATE_LIMITED, "too many awareness updates; some dropped")

    def _within_awareness_budget(self, messages: list[proto.YMessage]) -> bool:
        """Charged per entry: one message can carry many, each costing a check."""
        count = sum(_awareness_entries(m) for m in messages)
        return not count or self.awareness_budget.take(trio.current_time(), count) == 0.0

    async def _body(self, size: int) -> bytes:
        """The whole body, within the idle timeout (a stalled sender is cut off)."""
        with trio.move_on_after(self.ctx.config.tcp.idle_timeout_s):
            return await self.conn.receive_body(size)
        raise RemoteProtocolError(TIMEOUT, "the announced frame did not arrive", fatal=True)
