"""Live chat rooms: who is connected, and the sequencer that stores then broadcasts.

Theory of operation
-------------------
Every message of every room goes through one *sequencer* task: sessions hand it drafts
over a bounded channel; it takes everything waiting (up to ``MAX_BATCH``), stores the batch
in one SQLite transaction (each draft gets its room's next id), and only then broadcasts
each stored message to its room, in id order. So ids increase per room, nothing is sent
before it is durable, the broadcast order is the id order, and under load one commit and
one wake-up per client serve many messages. A session cancelled while its message is in
flight does not lose it: the sequencer still stores and broadcasts it.

A room's ``last_id`` is the id of the last message broadcast to it. A session joins by
reading ``last_id`` and subscribing in the same synchronous step, so every message with a
higher id reaches it live, and ``HISTORY`` (capped at that id, see the session) replays
only older ones: nothing lost, nothing twice.

A ``ChatRoom`` object lives while a session or a message in flight refers to it and is
dropped afterwards, so a room that expired and came back under the same code starts again
from the database (whose rows went with the old room).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field

import trio

from syncrox.errors import INTERNAL, NAME_TAKEN, ROOM_FULL, LocalProtocolError, StoreError
from syncrox.logs import log_event
from syncrox.protocol.chat import RoomEvent, format_event
from syncrox.protocol.framing import encode_line
from syncrox.services.chat_outbox import Outbox
from syncrox.store.chat import ChatStore, Draft

logger = logging.getLogger("syncrox.chat")

MAX_BATCH = 256
MAX_PENDING_POSTS = 1024
PUBLISH_PIECE_BYTES = 64 * 1024


@dataclass(eq=False)
class Subscriber:
    """One connection in a room."""

    user: str
    key: str  # user_key(user): the name as reserved, case-folded
    token_hash: str | None
    outbox: Outbox


class ChatRoom:
    def __init__(self, code: str) -> None:
        self.code = code
        self.last_id = 0
        self.loaded = False
        self._load_lock = trio.Lock()
        self.refs = 0  # sessions and in-flight messages referring to this object
        self.members: dict[Subscriber, None] = {}  # insertion-ordered set
        self._connections: Counter[str] = Counter()  # user key -> live connections

    async def load(self, store: ChatStore) -> None:
        # A lock, not an event: if the loading session is cancelled, the next one loads.
        async with self._load_lock:
            if not self.loaded:
                self.last_id = await store.last_id(self.code)
                self.loaded = True

    def publish(self, data: bytes, *, exclude: Subscriber | None = None) -> None:
        """Queue ``data`` for every member (never waits; an overflowing member is cut off)."""
        for member in list(self.members):
            if member is not exclude:
                member.outbox.broadcast(data)

    def check_join(self, newcomer: Subscriber, max_clients: int) -> list[Subscriber]:
        """Raise if ``newcomer`` may not join now; return untokened users of its name that a
        token holder displaces (the token reserves the name)."""
        if len(self.members) >= max_clients:
            raise LocalProtocolError(ROOM_FULL, f"room {self.code} has {max_clients} clients")
        same = [member for member in self.members if member.key == newcomer.key]
        if not same:
            return []
        if newcomer.token_hash is not None:
            if all(member.token_hash == newcomer.token_hash for member in same):
                return []
            return [member for member in same if member.token_hash != newcomer.token_hash]
        raise LocalProtocolError(
            NAME_TAKEN,
            f"{newcomer.user} is already connected to room {self.code}; to use one name "
            "from several connections, join with its token",
        )

    def add(self, member: Subscriber) -> bool:
        """Add a connection; ``True`` if it is its user's first (announce the join)."""
        self.members[member] = None
        self._connections[member.key] += 1
        return self._connections[member.key] == 1

    def remove(self, member: Subscriber) -> bool:
        """Remove a connection; ``True`` if it was its user's last (announce the leave)."""
        if self.members.pop(member, False) is None:
            self._connections[member.key] -= 1
            if not self._connections[member.key]:
                del self._connections[member.key]
                return True
        return False

    def names(self) -> list[str]:
        """Connected user names, one per user, in case-insensitive order."""
        seen: dict[str, str] = {}
        for member in self.members:
            seen.setdefault(member.key, member.user)
        return [seen[key] for key in sorted(seen)]


@dataclass(eq=False)
class _Post:
    room: ChatRoom
    draft: Draft
    done: trio.Event = field(default_factory=trio.Event)
    result: RoomEvent | StoreError | None = None


def join_in_pieces(lines: list[bytes], limit: int) -> list[bytes]:
    """``lines`` joined in order into pieces of at most ``limit`` bytes (a longer line is
    a piece of its own)."""
    pieces: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for line in lines:
        if current and size + len(line) > limit:
            pieces.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        pieces.append(b"".join(current))
    return pieces


def now_ms() -> int:
    return int(time.time() * 1000)


class ChatRooms:
    """The live rooms of the chat service and its sequencer."""

    def __init__(self, store: ChatStore, *, outbox_max_bytes: int) -> None:
        self._store = store
        self._piece_bytes = max(min(PUBLISH_PIECE_BYTES, outbox_max_bytes // 4), 1)
        self._rooms: dict[str, ChatRoom] = {}
        self._posts, self._incoming = trio.open_memory_channel[_Post](MAX_PENDING_POSTS)

    def live(self, code: str) -> ChatRoom | None:
        return self._rooms.get(code)

    async def open(self, code: str) -> ChatRoom:
        """The live room ``code``, loaded from the store once; pair with ``release``."""
        room = self._rooms.get(code)
        if room is None:
            room = self._rooms[code] = ChatRoom(code)
        room.refs += 1
        try:
            await room.load(self._store)
        except BaseException:
            self.release(room)
            raise
        return room

    def release(self, room: ChatRoom) -> None:
        room.refs -= 1
        if room.refs <= 0 and self._rooms.get(room.code) is room:
            del self._rooms[room.code]

    async def post(self, room: ChatRoom, draft: Draft) -> RoomEvent:
        """Store ``draft`` and broadcast it to ``room``; return the stored event."""
        post = _Post(room, draft)
        room.refs += 1
        try:
            await self._posts.send(post)
        except BaseException:
            self.release(room)
            raise
        await post.done.wait()
        if not isinstance(post.result, RoomEvent):
            raise LocalProtocolError(INTERNAL, "the message could not be stored; try again")
        return post.result

    async def run_sequencer(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        task_status.started()
        async for first in self._incoming:
            batch = [first]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._incoming.receive_nowait())
                except trio.WouldBlock:
                    break
            await self._commit(batch)

    async def _commit(self, batch: list[_Post]) -> None:
        results: list[RoomEvent | StoreError]
        try:
            results = await self._store.append([post.draft for post in batch], now_ms())
        except StoreError as exc:
            log_event(logger, "chat.store_failed", logging.ERROR, error=exc)
            results = [exc] * len(batch)
        # One write per member per batch: the lines a batch adds to a room go out joined
        # (in id order), so a busy server, whose batches grow, makes fewer and larger
        # writes instead of one system call per message per member. Joined into pieces of
        # at most ``piece_bytes`` (a quarter of a member's queue limit at most): the limit
        # is checked per piece, and a member that keeps up must never be cut off because
        # a batch was larger than the limit.
        lines: dict[ChatRoom, list[bytes]] = {}
        for post, result in zip(batch, results, strict=True):
            if isinstance(result, StoreError):
                log_event(logger, "chat.store_failed", logging.ERROR, room=post.room.code)
            else:
                post.room.last_id = result.id
                lines.setdefault(post.room, []).append(encode_line(format_event(result)))
        for room, room_lines in lines.items():
            for piece in join_in_pieces(room_lines, self._piece_bytes):
                room.publish(piece)
        for post, result in zip(batch, results, strict=True):
            post.result = result
            post.done.set()
            self.release(post.room)
