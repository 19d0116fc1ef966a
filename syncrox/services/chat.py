"""Chat service with image CDN, TCP 9009: moves bytes between sockets, the protocol core,
the live rooms and the store.

Each connection runs two tasks: a reader (this module's ``ChatSession``), which parses
requests and streams image uploads to disk, and a writer (``chat_outbox.Outbox.run``),
which drains the connection's bounded queue. Admission is the room registry's rule
(``HELLO <user> <room> [<token>]``: knowing the code admits you under any unreserved name,
a token reserves it; failures are rate-limited per address). Messages are stored, then
broadcast, by the sequencer in ``chat_rooms``.

``HISTORY`` replays only messages up to the room's last id at the moment this connection
joined (its *watermark*, sent in ``OK HELLO``); everything after it arrives live. A client
that reconnects with ``HISTORY since <last id it saw>`` therefore gets exactly what it
missed: nothing twice, nothing lost. History is fetched and queued ``HISTORY_PAGE`` records
at a time, each page only once the client has taken the previous one.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from syncrox.errors import (
    BUSY,
    DISPLACED,
    INTERNAL,
    NOT_FOUND,
    NOT_MEMBER,
    RATE_LIMITED,
    TIMEOUT,
    TOO_MANY_ERRORS,
    LocalProtocolError,
    ProtocolError,
    StoreError,
)
from syncrox.logs import log_event
from syncrox.net.lines import LineConnection, PeerTooSlow
from syncrox.net.tcp import serve_tcp
from syncrox.protocol import chat as proto
from syncrox.protocol.chat_frames import ChatFrames, FrameEvent, ImageChunk, ImageEnd, ImageStart
from syncrox.protocol.chat_frames import Line as TextLine
from syncrox.protocol.framing import encode_line, format_error
from syncrox.protocol.names import user_key
from syncrox.ratelimit import KeyedBuckets
from syncrox.services.chat_outbox import Outbox
from syncrox.services.chat_rooms import ChatRoom, ChatRooms, Subscriber
from syncrox.services.context import BoundPorts, ServiceContext
from syncrox.services.registry import Member
from syncrox.store.chat import Draft, ImageUpload

logger = logging.getLogger("syncrox.chat")

RECEIVE_CHUNK = 65536
HISTORY_PAGE = 20
MIN_ORPHAN_AGE_S = 600.0  # an unreferenced image younger than this is never swept

# Handles one event of the read loop; returns ``False`` to end the loop.
_Handler = Callable[[FrameEvent], Awaitable[bool]]


async def serve(
    ctx: ServiceContext, *, task_status: trio.TaskStatus[BoundPorts] = trio.TASK_STATUS_IGNORED
) -> None:
    service = ChatService(ctx)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.rooms.run_sequencer)
        nursery.start_soon(service.sweep_orphan_images)
        port = await nursery.start(
            functools.partial(
                serve_tcp,
                service.handle_connection,
                service="chat",
                host=ctx.config.host,
                port=ctx.config.ports.chat,
                limits=ctx.config.tcp,
            )
        )
        task_status.started({"chat": port})


class ChatService:
    """State shared by every chat connection."""

    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.config = ctx.config.chat
        self.store = ctx.store.chat
        self.rooms = ChatRooms(self.store, outbox_max_bytes=self.config.outbox_max_bytes)
        self.upload_slots = trio.CapacityLimiter(self.config.max_concurrent_uploads)
        self.download_slots = trio.CapacityLimiter(self.config.max_concurrent_downloads)
        self.msg_rates = KeyedBuckets(self.config.msg_burst, self.config.msg_refill_s)
        self.image_rates = KeyedBuckets(self.config.image_burst, self.config.image_refill_s)

    async def handle_connection(self, conn: LineConnection) -> None:
        await ChatSession(self, conn).run()

    async def sweep_orphan_images(self) -> None:
        interval = self.config.orphan_sweep_interval_s
        # A blob is stored just before its message row: a young orphan may be an upload
        # about to be referenced, whatever the interval is set to.
        older_than_s = max(interval, MIN_ORPHAN_AGE_S)
        while True:
            try:
                removed = await self.store.sweep_orphan_images(older_than_s=older_than_s)
                if removed:
                    log_event(logger, "chat.sweep", removed=removed)
            except StoreError as exc:
                log_event(logger, "chat.sweep_failed", logging.ERROR, error=exc)
            await trio.sleep(interval)


@dataclass
class _Upload:
    name: str
    blob: ImageUpload
    deadline: float
    head: bytes = b""


class ChatSession:
    """One client connection: the reader task, plus its outbox's writer task."""

    def __init__(self, service: ChatService, conn: LineConnection) -> None:
        self.service = service
        self.conn = conn
        self.config = service.config
        self.limits = service.ctx.config.tcp
        self.frames = ChatFrames(
            max_line_bytes=self.limits.max_line_bytes,
            max_image_bytes=self.config.max_image_bytes,
        )
        self.outbox = Outbox(
            conn.stream,
            peer=conn.peer,
            max_bytes=self.config.outbox_max_bytes,
            reply_threshold=self.config.outbox_reply_threshold_bytes,
            send_timeout_s=self.limits.send_timeout_s,
            read_image=service.store.read_image,
            download_slots=service.download_slots,
        )
        self.room: ChatRoom | None = None
        self.me: Subscriber | None = None
        self.watermark = 0
        self.upload: _Upload | None = None
        self.errors = 0
        self.last_typing = -math.inf
        self._admitted: tuple[Member, ChatRoom] | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write, nursery.cancel_scope)
            try:
                await self._converse()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                log_event(logger, "chat.disconnect", peer=self.conn.peer, reason="reset")
            finally:
                self._abort_upload()
                self.outbox.close()

    async def _write(self, reader_scope: trio.CancelScope) -> None:
        try:
            await self.outbox.run()
        except PeerTooSlow:
            log_event(
                logger, "chat.disconnect", logging.WARNING, peer=self.conn.peer, reason="slow"
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            log_event(logger, "chat.disconnect", peer=self.conn.peer, reason="reset")
        finally:
            # The writer stops when the reader is done, or on overflow or a dead peer:
            # then the reader has nothing left to do either.
            reader_scope.cancel()

    # ------------------------------------------------------------------ the read loop

    async def _converse(self) -> None:
        while True:
            admitted = await self._lobby()
            if admitted is None:
                return
            member, room = admitted
            try:
                async with self.service.ctx.rooms.presence(member):
                    if not await self._enter(member, room):
                        continue
                    try:
                        await self._loop(self._in_room)
                    finally:
                        self._leave()
                    return
            finally:
                self.service.rooms.release(room)

    async def _lobby(self) -> tuple[Member, ChatRoom] | None:
        """Serve requests until a successful ``HELLO`` (its admission and room), or the end."""
        self._admitted = None
        await self._loop(self._in_lobby)
        return self._admitted

    async def _loop(self, handle: _Handler) -> None:
        """Feed events to ``handle`` until it returns ``False``, EOF, a fatal error or too
        many refused requests in a row. Every refusal is answered ``ERR`` and logged."""
        while True:
            try:
                event = await self._next_event()
                if event is None or not await handle(event):
                    return
                self.errors = 0
            except (ProtocolError, StoreError) as exc:
                self._abort_upload()
                if isinstance(exc, StoreError):
                    log_event(logger, "chat.store_error", logging.ERROR, error=exc)
                    exc = LocalProtocolError(INTERNAL, "storage failed; the request had no effect")
                self.errors += 1
                await self._refuse(exc)
                if exc.fatal:
                    return
                if self.errors >= self.limits.max_consecutive_errors:
                    await self.outbox.reply(
                        format_error(TOO_MANY_ERRORS, "too many bad requests, closing")
                    )
                    return

    async def _next_event(self) -> FrameEvent | None:
        while True:
            event = self.frames.next_event()
            if event is not None:
                return event
            deadline = trio.current_time() + self.limits.idle_timeout_s
            if self.upload is not None:
                deadline = min(deadline, self.upload.deadline)
            with trio.move_on_at(deadline) as scope:
                data = await self.conn.stream.receive_some(RECEIVE_CHUNK)
            if scope.cancelled_caught:
                what = "image upload took too long" if self.upload else "idle for too long"
                raise LocalProtocolError(TIMEOUT, f"{what}, closing", fatal=True)
            if not data:
                return None
            self.frames.feed(data)

    async def _refuse(self, exc: ProtocolError) -> None:
        log_event(
            logger,
            "request.refused",
            logging.WARNING,
            peer=self.conn.peer,
            code=exc.code,
            reason=exc.message,
        )
        await self.outbox.reply(format_error(exc.code, exc.message))

    # ------------------------------------------------------------------ before HELLO

    async def _in_lobby(self, event: FrameEvent) -> bool:
        if isinstance(event, ImageStart):
            self.frames.skip_line()
        if not isinstance(event, TextLine):
            raise LocalProtocolError(NOT_MEMBER, "say HELLO <user> <room> first")
        match proto.parse_chat_command(event.text):
            case proto.Hello(user, code, token):
                member = await self.service.ctx.rooms.admit(code, user, self.conn.peer_host, token)
                self._admitted = (member, await self.service.rooms.open(code))
                return False
            case proto.Ping():
                await self.outbox.reply("PONG")
                return True
            case proto.Bye():
                await self.outbox.reply("OK BYE")
                return False
        raise LocalProtocolError(NOT_MEMBER, "say HELLO <user> <room> first")

    async def _enter(self, member: Member, room: ChatRoom) -> bool:
        me = Subscriber(member.user, user_key(member.user), member.token_hash, self.outbox)
        try:
            displaced = room.check_join(me, self.config.max_clients_per_room)
        except ProtocolError as exc:
            self.errors += 1
            await self._refuse(exc)
            return False
        # Synchronous from here: the watermark and the subscription are one step.
        self.room, self.me, self.watermark = room, me, room.last_id
        first = room.add(me)
        self.outbox.reply_nowait(proto.format_welcome(room.code, me.user, room.last_id))
        if first:
            room.publish(encode_line(f"JOINED {me.user}"), exclude=me)
        for other in displaced:
            other.outbox.close(format_error(DISPLACED, f"{me.user} joined with its token"))
        self.errors = 0
        log_event(logger, "chat.join", room=room.code, user=me.user, peer=self.conn.peer)
        return True

    def _leave(self) -> None:
        if self.room is None or self.me is None:
            return
        if self.room.remove(self.me):
            self.room.publish(encode_line(f"LEFT {self.me.user}"))
        log_event(logger, "chat.leave", room=self.room.code, user=self.me.user)
        self.me = None

    # ------------------------------------------------------------------ in a room

    async def _in_room(self, event: FrameEvent) -> bool:
        match event:
            case TextLine(text):
                return await self._command(proto.parse_chat_command(text))
            case ImageStart(fields):
                await self._start_upload(fields)
            case ImageChunk(data):
                await self._upload_chunk(data)
            case ImageEnd(size):
                await self._finish_upload(size)
        return True

    async def _command(self, command: proto.ChatCommand) -> bool:
        room, me = self._joined()
        match command:
            case proto.Hello():
                raise LocalProtocolError(
                    proto.ALREADY_JOINED, f"already in room {room.code}; reconnect to change"
                )
            case proto.Msg(content):
                self._take_rate(self.service.msg_rates, "messages")
                event = await self.service.rooms.post(room, Draft(room.code, me.user, content))
                await self.outbox.reply(f"OK MSG {event.id}")
            case proto.GetImage(image_id, name):
                await self._get_image(image_id, name)
            case proto.History(since, limit):
                await self._history(since, limit)
            case proto.Who():
                await self.outbox.reply(proto.format_users(room.names()))
            case proto.Typing():
                self._typing()
                await self.outbox.reply("OK TYPING")
            case proto.Ping():
                await self.outbox.reply("PONG")
            case proto.Bye():
                await self.outbox.reply("OK BYE")
                return False
        return True

    def _joined(self) -> tuple[ChatRoom, Subscriber]:
        if self.room is None or self.me is None:
            raise LocalProtocolError(NOT_MEMBER, "say HELLO <user> <room> first")
        return self.room, self.me

    def _take_rate(self, buckets: KeyedBuckets, what: str) -> None:
        room, me = self._joined()
        wait = buckets.take(f"{room.code}/{me.key}", trio.current_time())
        if wait:
            raise LocalProtocolError(RATE_LIMITED, f"too many {what}, retry in {wait:.1f} s")

    def _typing(self) -> None:
        room, me = self._joined()
        now = trio.current_time()
        # Notices are advisory: extra ones within the interval are dropped, not refused.
        if now - self.last_typing >= self.config.typing_interval_s:
            self.last_typing = now
            room.publish(encode_line(f"TYPING {me.user}"), exclude=me)

    async def _history(self, since: int | None, limit: int) -> None:
        room, _ = self._joined()
        store, upto = self.service.store, self.watermark
        limit = min(limit, self.config.history_max_limit)
        more = False
        if since is None:
            after = await store.newest_after(room.code, upto=upto, limit=limit)
            more = after > 0 and await store.has_messages(room.code, after=0, upto=after)
        else:
            after = since
        sent = 0
        while sent < limit:
            wanted = min(HISTORY_PAGE, limit - sent)
            page = await store.history(room.code, after=after, upto=upto, limit=wanted)
            for event in page:
                await self.outbox.reply("HIST " + proto.format_event(event))
            sent += len(page)
            if len(page) < wanted:
                break
            after = page[-1].id
        if since is not None and sent == limit:
            more = await store.has_messages(room.code, after=after, upto=upto)
        await self.outbox.reply(proto.format_history_end(sent, more))

    async def _get_image(self, image_id: int | None, name: str | None) -> None:
        room, _ = self._joined()
        found = await self.service.store.find_image(room.code, image_id=image_id, name=name)
        if found is None:
            wanted = name if name is not None else f"#{image_id}"
            raise LocalProtocolError(NOT_FOUND, f"no image {wanted} in room {room.code}")
        meta = found.image
        weight = (meta.size + 2) // 3 * 4
        header = proto.format_image_data_header(found.id, meta)
        await self.outbox.reply_image(header, meta.sha256, weight)

    # ------------------------------------------------------------------ image uploads

    async def _start_upload(self, fields: tuple[str, ...]) -> None:
        try:
            name = proto.parse_image_header(fields)
            self._take_rate(self.service.image_rates, "images")
        except ProtocolError:
            self.frames.skip_line()
            raise
        slots, timeout = self.service.upload_slots, self.config.image_upload_timeout_s
        acquired = False
        with trio.move_on_after(timeout):
            await slots.acquire_on_behalf_of(self)
            acquired = True
        if not acquired:
            self.frames.skip_line()
            raise LocalProtocolError(BUSY, "too many image uploads at once, try again later")
        try:
            blob = self.service.store.new_upload()
        except StoreError:
            slots.release_on_behalf_of(self)
            self.frames.skip_line()
            raise
        self.upload = _Upload(name, blob, trio.current_time() + timeout)

    async def _upload_chunk(self, data: bytes) -> None:
        upload = self.upload
        if upload is None:
            return
        if len(upload.head) < proto.SNIFF_BYTES:
            upload.head += data[: proto.SNIFF_BYTES - len(upload.head)]
            if len(upload.head) >= proto.SNIFF_BYTES and not proto.sniff_image_type(upload.head):
                self.frames.skip_line()
                raise _not_an_image()
        try:
            await upload.blob.write(data)
        except StoreError:
            self.frames.skip_line()
            raise

    async def _finish_upload(self, size: int) -> None:
        room, me = self._joined()
        upload = self.upload
        if upload is None:
            return
        try:
            mime = proto.sniff_image_type(upload.head)
            if mime is None:
                raise _not_an_image()
            digest = await upload.blob.commit()
        finally:
            self._abort_upload()
        meta = proto.ImageMeta(size, mime, digest, upload.name)
        event = await self.service.rooms.post(room, Draft(room.code, me.user, image=meta))
        log_event(logger, "chat.image", room=room.code, user=me.user, id=event.id, size=size)
        await self.outbox.reply(f"OK IMG {event.id}")

    def _abort_upload(self) -> None:
        """Discard an unfinished upload (a no-op after ``commit``) and free its slot."""
        if self.upload is not None:
            self.upload.blob.abort()
            self.service.upload_slots.release_on_behalf_of(self)
            self.upload = None


def _not_an_image() -> LocalProtocolError:
    return LocalProtocolError(proto.BAD_IMAGE, "not a png, jpeg, gif or webp image")
