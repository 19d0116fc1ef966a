"""Persistence behind small interfaces; SQLite and on-disk blobs are the embedded default.

``Store.open(data_dir)`` takes an exclusive lock on the data directory (two servers writing
one directory is how the original corrupted its JSON files), opens ``syncrox.db`` and the
blob store, and applies every component's migrations. Services see only the repository
interfaces (``RoomStore``, ...), so another backend can be added by implementing them.
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from syncrox.errors import StoreError
from syncrox.store import chat, collab, executions, files, rooms
from syncrox.store.blobs import BlobStore
from syncrox.store.sqlite import Database, Schema

DATABASE_NAME = "syncrox.db"
LOCK_NAME = ".lock"

# Every component's schema; a new repository adds its Schema here.
SCHEMAS: tuple[Schema, ...] = (
    rooms.SCHEMA,
    chat.SCHEMA,
    files.SCHEMA,
    executions.SCHEMA,
    collab.SCHEMA,
)


@dataclass
class Store:
    data_dir: Path
    db: Database
    blobs: BlobStore
    rooms: rooms.RoomStore
    _lock_fd: int
    chat: chat.ChatStore = field(init=False)
    files: files.FileStore = field(init=False)
    executions: executions.ExecutionStore = field(init=False)
    collab: collab.CollabStore = field(init=False)

    @classmethod
    def open(cls, data_dir: Path, *, sqlite_worker_thread: bool = True) -> Store:
        data_dir.mkdir(parents=True, exist_ok=True)
        lock_fd = _lock_directory(data_dir)
        try:
            db = Database.open(
                data_dir / DATABASE_NAME, SCHEMAS, worker_thread=sqlite_worker_thread
            )
            blobs = BlobStore(data_dir / "blobs")
            chat_store = chat.SqliteChatStore(db, data_dir)
            file_store = files.SqliteFileStore(db, BlobStore(data_dir / "files" / "blobs"))
        except BaseException:
            os.close(lock_fd)
            raise
        store = cls(data_dir, db, blobs, rooms.SqliteRoomStore(db), lock_fd)
        store.chat = chat_store
        store.files = file_store
        store.executions = executions.SqliteExecutionStore(db)
        store.collab = collab.SqliteCollabStore(db)
        return store

    def close(self) -> None:
        self.db.close()
        os.close(self._lock_fd)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _lock_directory(data_dir: Path) -> int:
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StoreError(f"data directory {data_dir} is in use by another SyncroX server") from None
    return fd
