"""Trio client of the chat service (TCP 9009), used by the CLI, the web UI and the tests.

::

    async with ChatClient.connect(host, port) as chat:
        welcome = await chat.hello("alice", "4821", token)
        await chat.send("hello")
        async for event in chat.events:      # ChatMessage, ImageMessage, Joined, Left, ...
            ...

The server answers every request exactly once, in order, interleaved with live room
events. A reader task routes each reply to the oldest pending request and each event to
``events`` (a bounded channel: a client that stops draining it is closed rather than
growing without bound — the server's own rule). Image data (``IMG_DATA``) is decoded as it
streams in. Timeouts belong to the caller: wrap calls in ``trio.fail_after``. A refused
request raises ``RequestRefused`` and the connection goes on; only the refusals after which
the server closes (``CONNECTION_ERRORS``, ``CONNECT_REFUSALS``) end it.

Resuming after a disconnect: remember the highest message id seen (``last_id``), reconnect,
``hello``, then ``history(since=last_id)`` until ``more`` is false: that is exactly what
was missed, and every later message arrives live.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Self

import trio

from syncrox.client.rooms import checked
from syncrox.errors import (
    BAD_COMMAND,
    BUSY,
    DISPLACED,
    TIMEOUT,
    TOO_MANY_ERRORS,
    ProtocolError,
    RemoteProtocolError,
    RequestRefused,
)
from syncrox.protocol import chat as proto
from syncrox.protocol.chat_frames import ChatFrames, ImageChunk, ImageEnd, ImageStart, Line
from syncrox.protocol.framing import encode_line
from syncrox.protocol.names import validate_room_code, validate_token, validate_user

RECEIVE_CHUNK = 65536
MAX_LINE_BYTES = 65536
DEFAULT_MAX_IMAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_EVENTS = 10_000
DEFAULT_KEEPALIVE_S = 60.0  # well inside the server's 300 s idle timeout
# A HISTORY page holds at most chat.history_max_limit (100) events; a server sending more
# than this in one page is broken, and must not grow the page without end.
MAX_HISTORY_PAGE = 10_000
# Errors that end the connection rather than answer a request, decided from how the server
# sends each: it closes the connection right after ``OVERFLOW`` (the last line of an outbox
# the client fell behind on), ``TIMEOUT`` (idle, or an image upload too slow: a fatal
# refusal), ``TOO_MANY_ERRORS`` (sent after the refusal of the last bad request) and
# ``DISPLACED`` (the user name's token holder joined). Every other ``ERR`` answers one
# request and the connection stays usable.
CONNECTION_ERRORS = frozenset({proto.OVERFLOW, TIMEOUT, TOO_MANY_ERRORS, DISPLACED})
# ``BUSY`` is both. The TCP layer (``syncrox.net.tcp``) refuses a connection beyond
# ``max_connections`` with ``ERR BUSY too many connections, ...`` before reading anything,
# then closes; the chat service answers an ``IMG`` with ``ERR BUSY too many image uploads
# ...`` when every upload slot is taken, and goes on. So one of these before any other line
# from the server refuses the connection; a later one answers the oldest pending request.
CONNECT_REFUSALS = frozenset({BUSY})


@dataclass(frozen=True)
class Disconnected:
    """The last event: why the connection ended (``code`` is ``EOF`` for a plain close)."""

    code: str
    text: str


@dataclass(frozen=True)
class HistoryPage:
    events: list[proto.RoomEvent]
    more: bool


@dataclass(frozen=True)
class ImageData:
    id: int
    image: proto.ImageMeta
    data: bytes


ChatEvent = proto.ChatMessage | proto.ImageMessage | proto.Joined | proto.Left | proto.TypingNotice
ClientEvent = ChatEvent | Disconnected


@dataclass(eq=False)
class _Pending:
    kind: str  # the request word whose reply this waits for
    done: trio.Event = field(default_factory=trio.Event)
    reply: proto.ServerLine | ImageData | None = None
    error: ProtocolError | None = None
    history: list[proto.RoomEvent] = field(default_factory=list)
    image: bytearray | None = None
    image_header: tuple[int, proto.ImageMeta] | None = None

    def resolve(self, reply: proto.ServerLine | ImageData) -> None:
        self.reply = reply
        self.done.set()

    def fail(self, error: ProtocolError) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class ChatClient:
    def __init__(self, stream: trio.SocketStream, *, max_image_bytes: int, max_events: int) -> None:
        self._stream = stream
        self._frames = ChatFrames(
            max_line_bytes=MAX_LINE_BYTES,
            max_image_bytes=max_image_bytes,
            image_word="IMG_DATA",
            header_fields=4,
            usage="IMG_DATA <id> <size> <type> <file> <base64>",
        )
        self._send_lock = trio.Lock()
        self._pending: collections.deque[_Pending] = collections.deque()
        self._events_in, self.events = trio.open_memory_channel[ClientEvent](max_events)
        self.closed: Disconnected | None = None
        self.last_id = 0  # highest message id seen live or in history
        self._heard = False  # whether the server has sent a whole line yet
        self._last_request = trio.current_time()

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_events: int = DEFAULT_MAX_EVENTS,
        keepalive_s: float | None = DEFAULT_KEEPALIVE_S,
    ) -> AsyncIterator[Self]:
        stream = await trio.open_tcp_stream(host, port)
        async with cls.over(
            stream, max_image_bytes=max_image_bytes, max_events=max_events, keepalive_s=keepalive_s
        ) as client:
            yield client

    @classmethod
    @asynccontextmanager
    async def over(
        cls,
        stream: trio.SocketStream,
        *,
        max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
        max_events: int = DEFAULT_MAX_EVENTS,
        keepalive_s: float | None = DEFAULT_KEEPALIVE_S,
    ) -> AsyncIterator[Self]:
        """A client over a connected stream (so a caller can bound the connect alone)."""
        async with stream, trio.open_nursery() as nursery:
            client = cls(stream, max_image_bytes=max_image_bytes, max_events=max_events)
            nursery.start_soon(client._read_loop)
            if keepalive_s:
                nursery.start_soon(client._keepalive, keepalive_s)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()

    # ------------------------------------------------------------------ requests

    async def hello(self, user: str, room: str, token: str | None = None) -> proto.Welcome:
        line = f"HELLO {checked(validate_user, user)} {checked(validate_room_code, room)}"
        if token:
            line += f" {checked(validate_token, token)}"
        reply = await self._request(encode_line(line), "HELLO")
        assert isinstance(reply, proto.Welcome)
        return reply

    async def send(self, content: str) -> int:
        """Send a message; return its id (the message itself also arrives in ``events``)."""
        reply = await self._request(
            encode_line("MSG " + checked(proto.validate_content, content)), "MSG"
        )
        assert isinstance(reply, proto.Ok)
        assert reply.id is not None
        return reply.id

    async def send_image(self, name: str, data: bytes) -> int:
        """Upload an image (one streamed ``IMG`` line); return its message id."""
        name = checked(proto.validate_chat_filename, name)
        line = b"IMG " + name.encode() + b" " + base64.b64encode(data) + b"\n"
        reply = await self._request(line, "IMG")
        assert isinstance(reply, proto.Ok)
        assert reply.id is not None
        return reply.id

    async def get_image(self, image: int | str) -> ImageData:
        """Fetch an image of this room by message id, or the newest with that file name."""
        target = str(image) if isinstance(image, int) else image
        if isinstance(image, str):
            checked(proto.validate_chat_filename, image)
        reply = await self._request(encode_line(f"GET_IMG {target}"), "GET_IMG")
        assert isinstance(reply, ImageData)
        return reply

    async def history(self, *, since: int | None = None, limit: int | None = None) -> HistoryPage:
        line = "HISTORY"
        if since is not None:
            line += f" since {since}"
        if limit is not None:
            line += f" limit {limit}"
        pending = _Pending("HISTORY")
        reply = await self._request(encode_line(line), "HISTORY", pending)
        assert isinstance(reply, proto.HistoryEnd)
        return HistoryPage(pending.history, reply.more)

    async def who(self) -> list[str]:
        reply = await self._request(encode_line("WHO"), "WHO")
        assert isinstance(reply, proto.Users)
        return list(reply.users)

    async def typing(self) -> None:
        await self._request(encode_line("TYPING"), "TYPING")

    async def ping(self) -> None:
        await self._request(encode_line("PING"), "PING")

    async def bye(self) -> None:
        await self._request(encode_line("BYE"), "BYE")

    async def _request(
        self, data: bytes, kind: str, pending: _Pending | None = None
    ) -> proto.ServerLine | ImageData:
        if self.closed is not None:
            raise RemoteProtocolError(self.closed.code, f"connection closed: {self.closed.text}")
        pending = pending or _Pending(kind)
        async with self._send_lock:
            self._pending.append(pending)
            self._last_request = trio.current_time()
            try:
                await self._stream.send_all(data)
            except BaseException:
                # A half-sent request leaves the stream unusable.
                await trio.aclose_forcefully(self._stream)
                raise
        await pending.done.wait()
        if pending.error is not None:
            raise pending.error
        assert pending.reply is not None
        return pending.reply

    async def _keepalive(self, interval_s: float) -> None:
        while self.closed is None:
            await trio.sleep_until(self._last_request + interval_s)
            if trio.current_time() >= self._last_request + interval_s and self.closed is None:
                try:
                    await self.ping()
                except ProtocolError:
                    return

    # ------------------------------------------------------------------ the reader

    async def _read_loop(self) -> None:
        reason = Disconnected("EOF", "the server closed the connection")
        try:
            while True:
                data = await self._stream.receive_some(RECEIVE_CHUNK)
                if not data:
                    break
                self._frames.feed(data)
                self._drain_frames()
        except ProtocolError as exc:
            reason = Disconnected(exc.code, exc.message)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            reason = Disconnected("BROKEN", str(exc) or "connection lost")
        finally:
            self._finish(self.closed or reason)

    def _drain_frames(self) -> None:
        while (event := self._frames.next_event()) is not None:
            match event:
                case Line(text):
                    self._on_line(proto.parse_server_line(text))
                    self._heard = True
                case ImageStart(fields):
                    pending = self._expect("GET_IMG")
                    pending.image_header = proto.parse_image_data_header(fields)
                    pending.image = bytearray()
                case ImageChunk(chunk):
                    image = self._expect("GET_IMG").image
                    assert image is not None
                    image += chunk
                case ImageEnd(size):
                    self._on_image_end(size)
            if self.closed is not None:
                raise RemoteProtocolError(self.closed.code, self.closed.text)

    def _on_line(self, line: proto.ServerLine) -> None:
        match line:
            case proto.ChatMessage() | proto.ImageMessage():
                self.last_id = max(self.last_id, line.id)
                self._emit(line)
            case proto.Joined() | proto.Left() | proto.TypingNotice():
                self._emit(line)
            case proto.Hist(event):
                self.last_id = max(self.last_id, event.id)
                page = self._expect("HISTORY").history
                if len(page) >= MAX_HISTORY_PAGE:
                    raise RemoteProtocolError(
                        BAD_COMMAND, f"a history page longer than {MAX_HISTORY_PAGE} events"
                    )
                page.append(event)
            case proto.ErrorReply(code, text):
                self._on_error(code, text)
            case _:
                pending = self._expect(_reply_kind(line))
                self._pending.popleft()
                pending.resolve(line)

    def _on_image_end(self, size: int) -> None:
        pending = self._expect("GET_IMG")
        assert pending.image is not None
        assert pending.image_header is not None
        image_id, meta = pending.image_header
        if size != meta.size:
            raise RemoteProtocolError(BAD_COMMAND, f"image {image_id}: {size} of {meta.size} bytes")
        self._pending.popleft()
        pending.resolve(ImageData(image_id, meta, bytes(pending.image)))

    def _on_error(self, code: str, text: str) -> None:
        refused_at_connect = code in CONNECT_REFUSALS and not self._heard
        if code in CONNECTION_ERRORS or refused_at_connect or not self._pending:
            self.closed = Disconnected(code, text)
            return
        self._pending.popleft().fail(RequestRefused(code, text))

    def _expect(self, kind: str) -> _Pending:
        if not self._pending or self._pending[0].kind != kind:
            raise RemoteProtocolError(BAD_COMMAND, f"unexpected {kind} reply from the server")
        return self._pending[0]

    def _emit(self, event: ChatEvent) -> None:
        try:
            self._events_in.send_nowait(event)
        except trio.WouldBlock:
            self.closed = Disconnected(proto.OVERFLOW, "events were not consumed; closing")

    def _finish(self, reason: Disconnected) -> None:
        self.closed = reason
        error = RemoteProtocolError(reason.code, f"connection closed: {reason.text}")
        while self._pending:
            self._pending.popleft().fail(error)
        with contextlib.suppress(trio.WouldBlock, trio.ClosedResourceError):
            self._events_in.send_nowait(reason)
        self._events_in.close()


def _reply_kind(line: proto.ServerLine) -> str:
    match line:
        case proto.Welcome():
            return "HELLO"
        case proto.Ok(what):
            return what
        case proto.Users():
            return "WHO"
        case proto.HistoryEnd():
            return "HISTORY"
        case proto.Pong():
            return "PING"
    raise RemoteProtocolError(BAD_COMMAND, f"unexpected line from the server: {line!r}"[:120])


def describe(event: ClientEvent) -> str:
    """One line for a terminal: peer text with control and format characters escaped."""
    match event:
        case proto.ChatMessage(id_, ts_ms, user, content):
            return f"{_clock(ts_ms)} #{id_} {user}: {printable(content)}"
        case proto.ImageMessage(id_, ts_ms, user, image):
            return (
                f"{_clock(ts_ms)} #{id_} {user} sent image {printable(image.name)} "
                f"({image.mime}, {image.size} bytes) - /get {id_} to save it"
            )
        case proto.Joined(user):
            return f"* {user} joined"
        case proto.Left(user):
            return f"* {user} left"
        case proto.TypingNotice(user):
            return f"* {user} is typing..."
        case Disconnected(code, text):
            return f"* disconnected: {code} {printable(text)}"


def printable(text: str) -> str:
    """Escape what could move a terminal's cursor or reorder text (bidi overrides)."""
    return "".join(ch if ch.isprintable() or ch == " " else f"\\u{ord(ch):04x}" for ch in text)


def _clock(ts_ms: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts_ms / 1000))
