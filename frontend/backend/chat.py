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
import threading
import time
from dataclasses import dataclass, field

import trio

from backend.errors import BackendError, user_message
from backend.runtime import LinkThread
from syncrox.client.chat import ChatClient, Disconnected
from syncrox.client.endpoints import Endpoints
from syncrox.errors import DISPLACED, RATE_LIMITED, TIMEOUT, RequestRefused
from syncrox.protocol import chat as proto

MAX_ENTRIES = 500  # what the page can scroll back through
FIRST_HISTORY = 50  # messages shown on joining
MAX_IMAGE_CACHE_BYTES = 32 << 20  # fetched images kept per session (least recently used out)
MAX_IMAGE_REQUESTS = 64  # image fetches waiting at once
TYPING_SHOWN_S = 5.0
CONNECT_TIMEOUT_S = 10.0
REQUEST_TIMEOUT_S = 15.0
IMAGE_TIMEOUT_S = 30.0
RECONNECT_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0)  # then every 8 s while the page is open
# Ends a reconnect may cure; any other refusal (NAME_TAKEN, BAD_TOKEN, NOT_FOUND, ...) ends
# the link with its reason on the page.
TRANSIENT = frozenset({"EOF", "BROKEN", proto.OVERFLOW, TIMEOUT, RATE_LIMITED})


@dataclass(frozen=True)
class Notice:
    """A line about the room rather than a message: someone joined or left."""

    text: str
    at_s: float


Entry = proto.ChatMessage | proto.ImageMessage | Notice


@dataclass(frozen=True)
class ChatView:
    """A consistent copy of the link's state for one render."""

    entries: list[Entry]
    present: list[str]
    typing: list[str]
    status: str  # "connecting", "connected", "reconnecting", "closed"
    problem: str | None  # why the link is not connected, fit for the user
    images: dict[int, bytes]
    image_failures: dict[int, str]


@dataclass
class _State:
    entries: collections.deque[Entry] = field(
        default_factory=lambda: collections.deque(maxlen=MAX_ENTRIES)
    )
    ids: set[int] = field(default_factory=set)
    last_id: int = 0
    present: set[str] = field(default_factory=set)
    typing_until: dict[str, float] = field(default_factory=dict)
    status: str = "connecting"
    problem: str | None = None
    images: collections.OrderedDict[int, bytes] = field(default_factory=collections.OrderedDict)
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
            if image_id in state.images or image_id in state.image_requests:
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
            self._keep_image(image_id, image.data)

    # ------------------------------------------------------------------ state updates

    def _remember(self, events: list[proto.RoomEvent]) -> None:
        with self._lock:
            state = self._state
            for event in events:
                if event.id in state.ids:
                    continue  # already shown: a resend or an overlap of history and live
                if len(state.entries) == state.entries.maxlen:
                    dropped = state.entries[0]
                    if not isinstance(dropped, Notice):
                        state.ids.discard(dropped.id)
                state.entries.append(event)
                state.ids.add(event.id)
                state.last_id = max(state.last_id, event.id)

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

    def _keep_image(self, image_id: int, data: bytes) -> None:
        with self._lock:
            state = self._state
            state.image_requests.discard(image_id)
            state.images[image_id] = data
            state.image_bytes += len(data)
            while state.image_bytes > MAX_IMAGE_CACHE_BYTES and len(state.images) > 1:
                _, evicted = state.images.popitem(last=False)
                state.image_bytes -= len(evicted)

    def _image_failed(self, image_id: int, reason: str) -> None:
        with self._lock:
            self._state.image_requests.discard(image_id)
            self._state.image_failures[image_id] = reason


def _refusal_text(reason: Disconnected) -> str:
    if reason.code == DISPLACED:
        return "you joined this room from another tab or device; this page stopped following it"
    return reason.text
