"""The live chat link of one browser session: a chat connection in its own Trio thread.

It keeps what the Chat page, Home and the sidebar show (the last messages, who is here, who
is typing, fetched images) in bounded structures under a lock; pages read ``snapshot()`` and
call ``send``, ``send_image`` and ``want_image``. If the connection drops, the link
reconnects and asks for exactly what it missed (``HISTORY since <last id>``), and drops
anything it already holds by id: nothing is missing, nothing shows twice. It gives up on
refusals a reconnect cannot cure (the name's token holder joined elsewhere, a lapsed
membership) and says why.
"""

from __future__ import annotations

import collections
import io
import threading
import time
import unicodedata
from dataclasses import dataclass, field

import trio
from PIL import Image

from backend.errors import BackendError, user_message
from backend.runtime import LinkThread
from syncrox.client.chat import ChatClient, Disconnected
from syncrox.client.endpoints import Endpoints
from syncrox.config import load_config
from syncrox.errors import DISPLACED, RATE_LIMITED, TIMEOUT, ProtocolError, RequestRefused
from syncrox.protocol import chat as proto

MAX_ENTRIES = 500  # what the page can scroll back through
FIRST_HISTORY = 50  # messages shown on joining
MAX_IMAGE_CACHE_BYTES = 32 << 20  # fetched images kept per session (least recently used out)
# Images a page shows inline at once, newest first: well inside the cache, so that showing
# them never evicts one of them (which would fetch it again on every render).
IMAGE_PAGE_BUDGET_BYTES = MAX_IMAGE_CACHE_BYTES // 2
MAX_IMAGE_REQUESTS = 64  # image fetches waiting at once
MAX_IMAGE_FAILURES = MAX_ENTRIES  # why an image could not be fetched, newest kept
DISPLAY_MAX_WIDTH = 800  # wider images are shown scaled down (prepared once, on fetch)
MAX_DISPLAY_PIXELS = 40_000_000  # a tiny file can claim a huge canvas: not decoded
TYPING_SHOWN_S = 5.0
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 15.0
IMAGE_TIMEOUT_S = 30.0
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # then every 8 s while the page is open
# Ends a reconnect may cure; any other refusal (NAME_TAKEN, BAD_TOKEN, NOT_FOUND, ...) ends
# the link with its reason on the page.
TRANSIENT = frozenset({"EOF", "BROKEN", proto.OVERFLOW, TIMEOUT, RATE_LIMITED})
# The file types the chat input offers, for the image types the CDN accepts (a type added
# to the protocol without an extension here fails at import, not at upload).
_EXTENSIONS = {"image/png": ("png",), "image/jpeg": ("jpg", "jpeg"), "image/gif": ("gif",),
               "image/webp": ("webp",)}  # fmt: skip
IMAGE_FILE_TYPES = tuple(ext for mime in sorted(proto.IMAGE_TYPES) for ext in _EXTENSIONS[mime])


def max_image_upload_mb() -> int:
    """The chat input's upload cap in MB (Streamlit counts MiB): the chat service's limit."""
    return max(1, load_config().chat.max_image_bytes >> 20)


def image_name(name: str) -> str:
    """A browser file name as a chat image label: one word (a chat line's file name has no
    blanks), NFC, and a plain fallback when the name is still not one the server accepts."""
    word = "_".join(unicodedata.normalize("NFC", name).split())
    try:
        return proto.validate_chat_filename(word)
    except ProtocolError:
        return "image"


def message_lines(text: str) -> list[str]:
    """What one chat input becomes: a message per non-blank line (a chat line has no line
    breaks, and the input lets people write several lines)."""
    return [line for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Notice:
    """A line about the room rather than a message: someone joined or left."""

    text: str
    at_s: float


# The pages' names for what the link holds (views use ``backend``, never ``syncrox``).
TextMessage = proto.ChatMessage
ImageMessage = proto.ImageMessage
Entry = TextMessage | ImageMessage | Notice


@dataclass(frozen=True)
class Picture:
    """A fetched image, ready for ``st.image(data, output_format=output_format)``.

    ``st.image`` re-encodes bytes whose format differs from ``output_format`` (or that are
    wider than the page) on every render; a live page renders twice a second. So each image
    is prepared once, when it arrives: kept as it is when the browser can show it as sent,
    else scaled down or converted once, and ``output_format`` says what it is."""

    data: bytes
    output_format: str  # "PNG", "JPEG" or "auto" (a GIF: kept animated)


def picture(data: bytes) -> Picture:
    """Prepare image bytes from the CDN for the page; ``ValueError`` if it cannot be shown."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > MAX_DISPLAY_PIXELS:
                raise ValueError(f"{width}x{height} pixels is too large to show")
            kind = image.format
            if kind in ("PNG", "JPEG", "GIF") and width <= DISPLAY_MAX_WIDTH:
                return Picture(data, "auto" if kind == "GIF" else kind)
            image.thumbnail((DISPLAY_MAX_WIDTH, DISPLAY_MAX_WIDTH * 4))  # first frame only
            if kind == "JPEG":
                out, output_format = image.convert("RGB"), "JPEG"
            else:
                out, output_format = image.convert("RGBA"), "PNG"
            buffer = io.BytesIO()
            out.save(buffer, output_format)
            return Picture(buffer.getvalue(), output_format)
    except ValueError:
        raise
    except Exception as exc:  # PIL raises many kinds for a damaged or hostile image
        raise ValueError(f"it cannot be decoded ({type(exc).__name__})") from exc


@dataclass(frozen=True)
class ChatView:
    """A consistent copy of the link's state for one render."""

    entries: list[Entry]
    present: list[str]
    typing: list[str]
    status: str  # "connecting", "connected", "reconnecting", "closed"
    problem: str | None  # why the link is not connected, fit for the user
    images: dict[int, Picture]
    image_failures: dict[int, str]


@dataclass
class _State:
    entries: collections.deque[Entry] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_ENTRIES)
    )
    last_id: int = 0  # the highest message id held: the resume point
    present: set[str] = field(default_factory=set)
    typing_until: dict[str, float] = field(default_factory=dict)
    status: str = "connecting"
    problem: str | None = None
    images: collections.OrderedDict[int, Picture] = field(default_factory=collections.OrderedDict)
    image_bytes: int = 0
    image_failures: dict[int, str] = field(default_factory=dict)
    image_requests: set[int] = field(default_factory=set)


class ChatLink:
    def __init__(self, where: Endpoints, room: str, user: str, token: str) -> None:
        self.where, self.room, self.user, self.token = where, room, user, token
        self._lock = threading.Lock()
        self._state = _State()
        self._client: ChatClient | None = None
        self._wanted_in, self._wanted_out = trio.open_memory_channel[int](MAX_IMAGE_REQUESTS)
        self.thread = LinkThread(f"chat-{room}-{user}", self._main)

    # ------------------------------------------------------------------ page side

    def start(self) -> ChatLink:
        self.thread.start()
        return self

    def close(self) -> None:
        self.thread.close()

    def snapshot(self) -> ChatView:
        now = time.monotonic()
        with self._lock:
            state = self._state
            typing = [u for u, until in state.typing_until.items() if until > now]
            return ChatView(
                entries=list(state.entries),
                present=sorted(state.present),
                typing=sorted(u for u in typing if u != self.user),
                status=state.status,
                problem=state.problem,
                images=dict(state.images),
                image_failures=dict(state.image_failures),
            )

    def send(self, text: str) -> int:
        return self.thread.call(lambda: self._connected().send(text), timeout_s=REQUEST_TIMEOUT_S)

    def send_image(self, name: str, data: bytes) -> int:
        return self.thread.call(
            lambda: self._connected().send_image(name, data), timeout_s=IMAGE_TIMEOUT_S
        )

    def want_image(self, image_id: int) -> None:
        """Ask for an image to be fetched (once); it appears in a later ``snapshot``."""
        with self._lock:
            state = self._state
            if image_id in state.images:
                state.images.move_to_end(image_id)  # still shown: evicted last
                return
            if image_id in state.image_requests:
                return
            if image_id in state.image_failures:
                return
            state.image_requests.add(image_id)

        def enqueue() -> None:
            try:
                self._wanted_in.send_nowait(image_id)
            except trio.WouldBlock:  # too many at once: asked again on a later render
                with self._lock:
                    self._state.image_requests.discard(image_id)

        self.thread.post(enqueue)

    def _connected(self) -> ChatClient:
        client = self._client
        if client is None or client.closed is not None:
            with self._lock:
                status, problem = self._state.status, self._state.problem
            if status == "closed":
                raise BackendError(f"the chat stopped: {problem}")
            raise BackendError("the chat is reconnecting; try again in a moment")
        return client

    # ------------------------------------------------------------------ link side

    async def _main(self) -> None:
        failures = 0
        while True:
            reason = await self._session()
            if reason is None:
                failures = 0
            elif reason.code not in TRANSIENT:
                self._set_status("closed", _refusal_text(reason))
                return
            delay = RECONNECT_DELAYS_S[min(failures, len(RECONNECT_DELAYS_S) - 1)]
            failures += 1
            await trio.sleep(delay)

    async def _session(self) -> Disconnected | None:
        """One connection, from connect to its end. ``None``: it was up and healthy."""
        self._set_status("connecting" if not self._state.last_id else "reconnecting", None)
        try:
            with trio.fail_after(CONNECT_TIMEOUT_S):
                stream = await trio.open_tcp_stream(self.where.host, self.where.port("chat"))
        except Exception as exc:
            self._set_status("reconnecting", user_message(exc))
            return Disconnected("BROKEN", user_message(exc))
        try:
            async with ChatClient.over(stream) as client:
                return await self._converse(client)
        except RequestRefused as exc:
            return Disconnected(exc.code, exc.message)
        except Exception as exc:
            return Disconnected("BROKEN", user_message(exc))
        finally:
            self._client = None

    async def _converse(self, client: ChatClient) -> Disconnected | None:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            await client.hello(self.user, self.room, self.token)
            await self._catch_up(client)
            present = await client.who()
        with self._lock:
            self._state.present = set(present)
        self._client = client
        self._set_status("connected", None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._fetch_images, client)
            reason = await self._follow(client)
            nursery.cancel_scope.cancel()
        return reason

    async def _catch_up(self, client: ChatClient) -> None:
        since = self._state.last_id
        if not since:
            self._remember((await client.history(limit=FIRST_HISTORY)).events)
            return
        while True:  # exactly what was missed, page by page
            page = await client.history(since=since)
            self._remember(page.events)
            if not page.more or not page.events:
                return
            since = page.events[-1].id

    async def _follow(self, client: ChatClient) -> Disconnected | None:
        async for event in client.events:
            match event:
                case Disconnected():
                    return event
                case proto.ChatMessage() | proto.ImageMessage():
                    self._remember([event])
                case proto.Joined(user):
                    self._presence(user, joined=True)
                case proto.Left(user):
                    self._presence(user, joined=False)
                case proto.TypingNotice(user):
                    with self._lock:
                        self._state.typing_until[user] = time.monotonic() + TYPING_SHOWN_S
        return client.closed

    async def _fetch_images(self, client: ChatClient) -> None:
        async for image_id in self._wanted_out:
            try:
                with trio.fail_after(IMAGE_TIMEOUT_S):
                    image = await client.get_image(image_id)
            except RequestRefused as exc:
                self._image_failed(image_id, exc.message)
                continue
            except trio.TooSlowError:
                self._image_failed(image_id, f"it did not arrive within {IMAGE_TIMEOUT_S:g} s")
                continue
            except BaseException:
                # The connection ended (or the link is closing): a later render asks again.
                with self._lock:
                    self._state.image_requests.discard(image_id)
                raise
            try:  # decoding takes a while for a big image: not on the link's loop
                shown = await trio.to_thread.run_sync(picture, image.data)
            except ValueError as exc:
                self._image_failed(image_id, str(exc))
                continue
            self._keep_image(image_id, shown)

    # ------------------------------------------------------------------ state updates

    def _remember(self, events: list[proto.RoomEvent]) -> None:
        # Ids only grow in what reaches us: history up to the connection's watermark, then
        # live messages above it, and on a reconnect exactly the ids above ``last_id``. So
        # an id not above ``last_id`` is one already held (an overlap): drop it. That needs
        # no set of seen ids, and nothing shows twice.
        with self._lock:
            state = self._state
            for event in events:
                if event.id <= state.last_id:
                    continue
                state.entries.append(event)
                state.last_id = event.id

    def _presence(self, user: str, *, joined: bool) -> None:
        with self._lock:
            state = self._state
            if joined:
                state.present.add(user)
            else:
                state.present.discard(user)
                state.typing_until.pop(user, None)
            state.entries.append(Notice(f"{user} {'joined' if joined else 'left'}", time.time()))

    def _set_status(self, status: str, problem: str | None) -> None:
        with self._lock:
            self._state.status, self._state.problem = status, problem

    def _keep_image(self, image_id: int, shown: Picture) -> None:
        with self._lock:
            state = self._state
            state.image_requests.discard(image_id)
            if image_id in state.images:
                return
            state.images[image_id] = shown
            state.image_bytes += len(shown.data)
            while state.image_bytes > MAX_IMAGE_CACHE_BYTES and len(state.images) > 1:
                _, evicted = state.images.popitem(last=False)
                state.image_bytes -= len(evicted.data)

    def _image_failed(self, image_id: int, reason: str) -> None:
        with self._lock:
            failures = self._state.image_failures
            self._state.image_requests.discard(image_id)
            failures[image_id] = reason
            while len(failures) > MAX_IMAGE_FAILURES:
                del failures[next(iter(failures))]


def _refusal_text(reason: Disconnected) -> str:
    if reason.code == DISPLACED:
        return "you joined this room from another tab or device; this page stopped following it"
    return reason.text
