"""Collaborative documents: an append-only log of updates per document, folded into a
snapshot from time to time. The interface the collab service needs, and its SQLite version.

A document is ``(room, language)``. Its row holds the latest *snapshot* (the whole document
as one Yjs update, as of log entry ``snapshot_seq``); ``collab_updates`` holds every update
integrated since, in order. Loading applies the snapshot, then the log. The service appends
each batch of updates in one transaction *before* it acknowledges or relays any of them, so
whatever a client was told is stored survives a crash (commits in WAL mode survive
``kill -9``, see ``store.sqlite``). Compaction replaces the snapshot and deletes the entries
it folded in, in one transaction, so a crash leaves either the old pair or the new one.

Documents reference the room manager's ``rooms`` table with ``ON DELETE CASCADE``: when an
idle room expires, its documents go with it, and a later room with the same code starts
from the templates again.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from syncrox.errors import StoreError
from syncrox.store.sqlite import Database, Schema, transaction

# Plain rowid tables (not WITHOUT ROWID): snapshots and some updates are large blobs.
SCHEMA = Schema(
    component="collab",
    steps=(
        """
        CREATE TABLE collab_documents (
            room TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
            language TEXT NOT NULL,
            snapshot BLOB NOT NULL,
            snapshot_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL,
            log_bytes INTEGER NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (room, language)
        );
        CREATE TABLE collab_updates (
            room TEXT NOT NULL,
            language TEXT NOT NULL,
            seq INTEGER NOT NULL,
            body BLOB NOT NULL,
            PRIMARY KEY (room, language, seq),
            FOREIGN KEY (room, language) REFERENCES collab_documents (room, language)
                ON DELETE CASCADE
        );
        """,
    ),
)


@dataclass(frozen=True)
class StoredDocument:
    """A document as stored: apply ``snapshot``, then ``updates`` in order."""

    snapshot: bytes
    updates: list[bytes]
    last_seq: int  # the seq of the last entry of ``updates`` (or of the snapshot)
    log_bytes: int  # the size of ``updates``
    created: bool = False  # this call created it (from the template)


class CollabStore(Protocol):
    async def open_document(
        self, room: str, language: str, template: bytes, now: float
    ) -> StoredDocument:
        """Load a document, creating it with ``template`` as its snapshot if it is new.
        Raises ``StoreError`` if the room does not exist (any more)."""

    async def append(self, room: str, language: str, updates: Sequence[bytes], now: float) -> int:
        """Append ``updates`` to the log in one transaction; return the new last seq."""

    async def compact(self, room: str, language: str, snapshot: bytes, upto_seq: int) -> None:
        """Make ``snapshot`` (the state after entry ``upto_seq``) the snapshot; drop the
        entries it contains."""


class SqliteCollabStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def open_document(
        self, room: str, language: str, template: bytes, now: float
    ) -> StoredDocument:
        def load(conn: sqlite3.Connection) -> StoredDocument:
            with transaction(conn):
                row = conn.execute(
                    "SELECT snapshot, snapshot_seq, last_seq FROM collab_documents"
                    " WHERE room = ? AND language = ?",
                    (room, language),
                ).fetchone()
                if row is None:
                    conn.execute(
                        "INSERT INTO collab_documents (room, language, snapshot, snapshot_seq,"
                        " last_seq, log_bytes, created_at, updated_at)"
                        " VALUES (?, ?, ?, 0, 0, 0, ?, ?)",
                        (room, language, template, now, now),
                    )
                    return StoredDocument(template, [], 0, 0, created=True)
                snapshot, snapshot_seq, last_seq = row
                updates = [
                    bytes(body)
                    for (body,) in conn.execute(
                        "SELECT body FROM collab_updates WHERE room = ? AND language = ?"
                        " AND seq > ? ORDER BY seq",
                        (room, language, snapshot_seq),
                    )
                ]
                size = sum(len(update) for update in updates)
                return StoredDocument(bytes(snapshot), updates, last_seq, size)

        return await self._db.run(load)

    async def append(self, room: str, language: str, updates: Sequence[bytes], now: float) -> int:
        def append(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                row = conn.execute(
                    "SELECT last_seq FROM collab_documents WHERE room = ? AND language = ?",
                    (room, language),
                ).fetchone()
                if row is None:
                    raise StoreError(f"document {room}/{language} does not exist")
                first = int(row[0]) + 1
                conn.executemany(
                    "INSERT INTO collab_updates (room, language, seq, body) VALUES (?, ?, ?, ?)",
                    [(room, language, first + i, body) for i, body in enumerate(updates)],
                )
                last = first + len(updates) - 1
                conn.execute(
                    "UPDATE collab_documents SET last_seq = ?, log_bytes = log_bytes + ?,"
                    " updated_at = ? WHERE room = ? AND language = ?",
                    (last, sum(len(body) for body in updates), now, room, language),
                )
                return last

        return await self._db.run(append)

    async def compact(self, room: str, language: str, snapshot: bytes, upto_seq: int) -> None:
        def compact(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "DELETE FROM collab_updates WHERE room = ? AND language = ? AND seq <= ?",
                    (room, language, upto_seq),
                )
                conn.execute(
                    "UPDATE collab_documents SET snapshot = ?, snapshot_seq = ?, log_bytes ="
                    " (SELECT COALESCE(SUM(LENGTH(body)), 0) FROM collab_updates"
                    "  WHERE room = ? AND language = ?)"
                    " WHERE room = ? AND language = ?",
                    (snapshot, upto_seq, room, language, room, language),
                )

        await self._db.run(compact)
