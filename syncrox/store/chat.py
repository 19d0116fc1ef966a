"""Chat messages and images: the interface the chat service needs, and its SQLite version.

Messages live in one table keyed by ``(room, id)``; ids are assigned inside the inserting
transaction as the room's last id + 1, so they increase per room and survive restarts (the
original restarted them at 1 and overwrote its images). Server timestamps never go
backwards within a room, even if the wall clock does.

The table references the room manager's ``rooms`` table with ``ON DELETE CASCADE``: when an
idle room expires, its chat goes with it, so a room that later gets the same code never
sees an earlier room's messages.

Images are content-addressed blobs (``BlobStore``) under ``<data-dir>/cdn/``; the table
holds their metadata (name, size, type from magic bytes, SHA-256). Writing the same bytes
twice stores one blob; nothing is ever overwritten. Blobs no row refers to any more (their
room expired) are removed by ``sweep_orphan_images``.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol, TypeVar

import trio

from syncrox.errors import StoreError
from syncrox.protocol.chat import ChatMessage, ImageMessage, ImageMeta, RoomEvent
from syncrox.store.blobs import BlobStore, BlobWriter, is_digest
from syncrox.store.sqlite import Database, Schema, transaction

T = TypeVar("T")

CDN_DIR = "cdn"
READ_CHUNK_BYTES = 48 * 1024  # a multiple of 3: each chunk is whole base64 quanta

SCHEMA = Schema(
    component="chat",
    steps=(
        """
        CREATE TABLE chat_messages (
            room TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
            id INTEGER NOT NULL,
            ts_ms INTEGER NOT NULL,
            user TEXT NOT NULL,
            content TEXT NOT NULL,
            image_sha256 TEXT,
            image_size INTEGER,
            image_type TEXT,
            PRIMARY KEY (room, id)
        ) WITHOUT ROWID;
        CREATE INDEX chat_images_by_name ON chat_messages (room, content, id)
            WHERE image_sha256 IS NOT NULL;
        CREATE INDEX chat_images_by_digest ON chat_messages (image_sha256)
            WHERE image_sha256 IS NOT NULL;
        """,
    ),
)


@dataclass(frozen=True)
class Draft:
    """A message to store: text, or (with ``image``) an image whose blob is already stored."""

    room: str
    user: str
    content: str = ""
    image: ImageMeta | None = None


class ChatStore(Protocol):
    async def append(self, drafts: Sequence[Draft], now_ms: int) -> list[RoomEvent | StoreError]:
        """Store the drafts in order, in one transaction; each gets its room's next id."""

    async def last_id(self, room: str) -> int: ...

    async def history(self, room: str, *, after: int, upto: int, limit: int) -> list[RoomEvent]:
        """Up to ``limit`` events with ``after < id <= upto``, oldest first."""

    async def newest_after(self, room: str, *, upto: int, limit: int) -> int:
        """The ``after`` that selects the newest ``limit`` events with ``id <= upto``."""

    async def has_messages(self, room: str, *, after: int, upto: int) -> bool: ...

    async def find_image(
        self, room: str, *, image_id: int | None = None, name: str | None = None
    ) -> ImageMessage | None:
        """An image of ``room`` by id, or the newest with that name."""

    def new_upload(self) -> ImageUpload: ...

    def read_image(self, digest: str) -> AsyncGenerator[bytes, None]: ...

    async def sweep_orphan_images(self, *, older_than_s: float) -> int: ...


class ImageUpload:
    """An image blob being written; ``commit()`` stores it, ``abort()`` discards it."""

    def __init__(self, blobs: BlobStore, offload: Offload) -> None:
        self._writer: BlobWriter = blobs.writer()
        self._offload = offload
        self.size = 0

    async def write(self, data: bytes) -> None:
        await self._offload(self._writer.write, data)
        self.size += len(data)

    async def commit(self) -> str:
        return await self._offload(self._writer.commit)

    def abort(self) -> None:
        self._writer.abort()


class Offload:
    """Runs blocking file work in a worker thread, or inline when the store runs inline
    (``store.sqlite_worker_thread=false``, for tests in virtual time)."""

    def __init__(self, worker_thread: bool) -> None:
        self.worker_thread = worker_thread

    async def __call__(self, fn: Callable[..., T], *args: object) -> T:
        if not self.worker_thread:
            await trio.lowlevel.checkpoint()
            return fn(*args)
        return await trio.to_thread.run_sync(fn, *args)


_SELECT = "SELECT id, ts_ms, user, content, image_sha256, image_size, image_type FROM chat_messages"
Row = tuple[int, int, str, str, str | None, int | None, str | None]


class SqliteChatStore:
    def __init__(self, database: Database, data_dir: Path) -> None:
        self._db = database
        self.blobs = BlobStore(data_dir / CDN_DIR)
        self._offload = Offload(database.worker_thread)

    async def append(self, drafts: Sequence[Draft], now_ms: int) -> list[RoomEvent | StoreError]:
        def append(conn: sqlite3.Connection) -> list[RoomEvent | StoreError]:
            with transaction(conn):
                return [_insert(conn, draft, now_ms) for draft in drafts]

        return await self._db.run(append)

    async def last_id(self, room: str) -> int:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT max(id) FROM chat_messages WHERE room = ?", (room,)
            ).fetchone()
        )
        return int(row[0] or 0)

    async def history(self, room: str, *, after: int, upto: int, limit: int) -> list[RoomEvent]:
        rows = await self._db.run(
            lambda c: c.execute(
                _SELECT + " WHERE room = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
                (room, after, upto, limit),
            ).fetchall()
        )
        return [_event(row) for row in rows]

    async def newest_after(self, room: str, *, upto: int, limit: int) -> int:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT id FROM chat_messages WHERE room = ? AND id <= ?"
                " ORDER BY id DESC LIMIT 1 OFFSET ?",
                (room, upto, max(0, limit - 1)),
            ).fetchone()
        )
        return int(row[0]) - 1 if row else 0

    async def has_messages(self, room: str, *, after: int, upto: int) -> bool:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT 1 FROM chat_messages WHERE room = ? AND id > ? AND id <= ? LIMIT 1",
                (room, after, upto),
            ).fetchone()
        )
        return row is not None

    async def find_image(
        self, room: str, *, image_id: int | None = None, name: str | None = None
    ) -> ImageMessage | None:
        args: tuple[object, ...]
        if image_id is not None:
            where, args = "room = ? AND id = ?", (room, image_id)
        else:
            where, args = "room = ? AND content = ?", (room, name or "")
        row = await self._db.run(
            lambda c: c.execute(
                f"{_SELECT} WHERE {where} AND image_sha256 IS NOT NULL ORDER BY id DESC LIMIT 1",
                args,
            ).fetchone()
        )
        event = _event(row) if row else None
        return event if isinstance(event, ImageMessage) else None

    def new_upload(self) -> ImageUpload:
        return ImageUpload(self.blobs, self._offload)

    async def read_image(self, digest: str) -> AsyncGenerator[bytes, None]:
        """The blob in ``READ_CHUNK_BYTES`` pieces (a stream, never the whole image)."""
        handle = await self._offload(_open_binary, self.blobs.path(digest))
        try:
            while chunk := await self._offload(handle.read, READ_CHUNK_BYTES):
                yield chunk
        finally:
            handle.close()

    async def sweep_orphan_images(self, *, older_than_s: float) -> int:
        """Delete blobs no message refers to, if older than ``older_than_s`` (a blob is
        written just before its row, so a young unreferenced blob may be an upload in
        flight)."""
        rows = await self._db.run(
            lambda c: c.execute(
                "SELECT DISTINCT image_sha256 FROM chat_messages WHERE image_sha256 IS NOT NULL"
            ).fetchall()
        )
        referenced = {row[0] for row in rows}
        cutoff = time.time() - older_than_s
        return await self._offload(self._delete_orphans, referenced, cutoff)

    def _delete_orphans(self, referenced: set[str], cutoff: float) -> int:
        removed = 0
        for path in self.blobs.root.glob("??/??/*"):
            if is_digest(path.name) and path.name not in referenced:
                removed += self.blobs.delete_if_older(path, cutoff)
        return removed


def _open_binary(path: Path) -> BinaryIO:
    return path.open("rb")


def _insert(conn: sqlite3.Connection, draft: Draft, now_ms: int) -> RoomEvent | StoreError:
    """Insert one draft under a savepoint, so one failure (its room was just deleted) does
    not undo the rest of the batch."""
    last = conn.execute(
        "SELECT id, ts_ms FROM chat_messages WHERE room = ? ORDER BY id DESC LIMIT 1",
        (draft.room,),
    ).fetchone()
    last_id, last_ts = last if last else (0, 0)
    image = draft.image
    row: Row = (
        last_id + 1,
        max(now_ms, last_ts),
        draft.user,
        image.name if image else draft.content,
        image.sha256 if image else None,
        image.size if image else None,
        image.mime if image else None,
    )
    conn.execute("SAVEPOINT draft")
    try:
        conn.execute(
            "INSERT INTO chat_messages (room, id, ts_ms, user, content, image_sha256,"
            " image_size, image_type) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (draft.room, *row),
        )
    except sqlite3.Error as exc:
        conn.execute("ROLLBACK TO draft")
        conn.execute("RELEASE draft")
        return StoreError(f"cannot store message in room {draft.room}: {exc}")
    conn.execute("RELEASE draft")
    return _event(row)


def _event(row: Row) -> RoomEvent:
    id_, ts_ms, user, content, digest, size, mime = row
    if digest is None:
        return ChatMessage(id_, ts_ms, user, content)
    return ImageMessage(id_, ts_ms, user, ImageMeta(size or 0, mime or "", digest, content))
