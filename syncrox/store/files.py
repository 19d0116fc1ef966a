"""Shared files of rooms, transfers and their congestion events: interface and SQLite.

A room's file is a name pointing at a content-addressed blob in the files' own blob store
(``<data>/files/blobs``, apart from other services' blobs so that collecting unreferenced
blobs can never touch theirs). A same-name upload *replaces* the name atomically when it
completes (one UPDATE); the old blob is removed once no file of any room refers to it.
A room that expires takes its files and transfer records with it (``ON DELETE CASCADE``);
their blobs are collected at the next start.
"""

# ruff: noqa: S608 (queries splice only the constant column lists; values are parameters)
from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from syncrox.store.blobs import BlobStore, is_digest
from syncrox.store.sqlite import Database, Schema, transaction

SCHEMA = Schema(
    component="files",
    steps=(
        """
        CREATE TABLE files (
            room TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
            name TEXT NOT NULL,
            digest TEXT NOT NULL,
            size INTEGER NOT NULL,
            uploaded_by TEXT NOT NULL,
            created_at REAL NOT NULL,
            PRIMARY KEY (room, name)
        );
        CREATE INDEX files_by_digest ON files (digest);
        CREATE TABLE transfers (
            id TEXT PRIMARY KEY,
            room TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
            name TEXT NOT NULL,
            direction TEXT NOT NULL,
            user TEXT NOT NULL,
            algo TEXT NOT NULL,
            codec TEXT NOT NULL,
            size INTEGER NOT NULL,
            digest TEXT NOT NULL,
            started_at REAL NOT NULL,
            finished_at REAL,
            status TEXT NOT NULL
        );
        CREATE INDEX transfers_by_room ON transfers (room, started_at);
        CREATE TABLE transfer_events (
            transfer_id TEXT NOT NULL REFERENCES transfers (id) ON DELETE CASCADE,
            idx INTEGER NOT NULL,
            ts REAL NOT NULL,
            event TEXT NOT NULL,
            seq INTEGER NOT NULL,
            bytes INTEGER NOT NULL,
            rtt_ms REAL,
            srtt_ms REAL,
            rttvar_ms REAL,
            rto_ms REAL NOT NULL,
            cwnd REAL NOT NULL,
            ssthresh REAL NOT NULL,
            in_flight INTEGER NOT NULL,
            rwnd INTEGER NOT NULL,
            PRIMARY KEY (transfer_id, idx)
        );
        """,
        # An upload's client may report its events once (EVENTS): set when it tries.
        "ALTER TABLE transfers ADD COLUMN reported_at REAL;",
    ),
)


@dataclass(frozen=True)
class FileRecord:
    room: str
    name: str
    digest: str
    size: int
    uploaded_by: str
    created_at: float


@dataclass(frozen=True)
class TransferRecord:
    id: str
    room: str
    name: str
    direction: str
    user: str
    algo: str
    codec: str
    size: int
    digest: str
    started_at: float
    finished_at: float | None
    status: str


@dataclass(frozen=True)
class EventRow:
    """One stored congestion event; ``ts`` is Unix epoch seconds."""

    ts: float
    event: str
    seq: int
    bytes: int
    rtt_ms: float | None
    srtt_ms: float | None
    rttvar_ms: float | None
    rto_ms: float
    cwnd: float
    ssthresh: float
    in_flight: int
    rwnd: int


class FileStore(Protocol):
    blobs: BlobStore

    async def list_files(self, room: str) -> list[FileRecord]: ...

    async def get_file(self, room: str, name: str) -> FileRecord | None: ...

    async def put_file(self, record: FileRecord) -> str | None:
        """Insert or replace ``(room, name)``; return the replaced digest, if any."""

    async def delete_file(self, room: str, name: str) -> FileRecord | None: ...

    async def is_referenced(self, digest: str) -> bool: ...

    async def referenced_digests(self) -> set[str]: ...

    async def start_transfer(self, record: TransferRecord) -> None: ...

    async def finish_transfer(
        self, transfer_id: str, status: str, finished_at: float, *, algo: str, codec: str
    ) -> None: ...

    async def add_events(
        self, transfer_id: str, first_idx: int, rows: Sequence[EventRow]
    ) -> None: ...  # fmt: skip

    async def claim_report(self, transfer_id: str, now: float) -> bool:
        """Take the transfer's one chance of a client report; ``False`` if it was taken
        before (whatever came of it)."""

    async def get_transfer(self, transfer_id: str) -> TransferRecord | None: ...

    async def list_transfers(self, room: str, limit: int) -> list[TransferRecord]: ...

    async def events(self, transfer_id: str) -> list[EventRow]: ...


_FILE_COLUMNS = "room, name, digest, size, uploaded_by, created_at"
_TRANSFER_COLUMNS = (
    "id, room, name, direction, user, algo, codec, size, digest, started_at, finished_at, status"
)
_EVENT_COLUMNS = (
    "ts, event, seq, bytes, rtt_ms, srtt_ms, rttvar_ms, rto_ms, cwnd, ssthresh, in_flight, rwnd"
)


class SqliteFileStore:
    def __init__(self, database: Database, blobs: BlobStore) -> None:
        self._db = database
        self.blobs = blobs

    async def list_files(self, room: str) -> list[FileRecord]:
        rows = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE room = ? ORDER BY name", (room,)
            ).fetchall()
        )
        return [FileRecord(*row) for row in rows]

    async def get_file(self, room: str, name: str) -> FileRecord | None:
        row = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_FILE_COLUMNS} FROM files WHERE room = ? AND name = ?", (room, name)
            ).fetchone()
        )
        return FileRecord(*row) if row else None

    async def put_file(self, record: FileRecord) -> str | None:
        def put(conn: sqlite3.Connection) -> str | None:
            with transaction(conn):
                old = conn.execute(
                    "SELECT digest FROM files WHERE room = ? AND name = ?",
                    (record.room, record.name),
                ).fetchone()
                conn.execute(
                    f"INSERT INTO files ({_FILE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (room, name) DO UPDATE SET digest = excluded.digest,"
                    " size = excluded.size, uploaded_by = excluded.uploaded_by,"
                    " created_at = excluded.created_at",
                    (record.room, record.name, record.digest, record.size,
                     record.uploaded_by, record.created_at),
                )  # fmt: skip
                return str(old[0]) if old and old[0] != record.digest else None

        return await self._db.run(put)

    async def delete_file(self, room: str, name: str) -> FileRecord | None:
        def delete(conn: sqlite3.Connection) -> FileRecord | None:
            with transaction(conn):
                row = conn.execute(
                    f"SELECT {_FILE_COLUMNS} FROM files WHERE room = ? AND name = ?",
                    (room, name),
                ).fetchone()
                if row is None:
                    return None
                conn.execute("DELETE FROM files WHERE room = ? AND name = ?", (room, name))
                return FileRecord(*row)

        return await self._db.run(delete)

    async def is_referenced(self, digest: str) -> bool:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT 1 FROM files WHERE digest = ? LIMIT 1", (digest,)
            ).fetchone()
        )
        return row is not None

    async def referenced_digests(self) -> set[str]:
        rows = await self._db.run(
            lambda c: c.execute("SELECT DISTINCT digest FROM files").fetchall()
        )
        return {str(row[0]) for row in rows}

    async def start_transfer(self, record: TransferRecord) -> None:
        values = (
            record.id, record.room, record.name, record.direction, record.user, record.algo,
            record.codec, record.size, record.digest, record.started_at, record.finished_at,
            record.status,
        )  # fmt: skip

        def insert(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    f"INSERT INTO transfers ({_TRANSFER_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )

        await self._db.run(insert)

    async def finish_transfer(
        self, transfer_id: str, status: str, finished_at: float, *, algo: str, codec: str
    ) -> None:
        def update(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute(
                    "UPDATE transfers SET status = ?, finished_at = ?, algo = ?, codec = ?"
                    " WHERE id = ?",
                    (status, finished_at, algo, codec, transfer_id),
                )

        await self._db.run(update)

    async def add_events(self, transfer_id: str, first_idx: int, rows: Sequence[EventRow]) -> None:
        values = [
            (transfer_id, first_idx + i, r.ts, r.event, r.seq, r.bytes, r.rtt_ms, r.srtt_ms,
             r.rttvar_ms, r.rto_ms, r.cwnd, r.ssthresh, r.in_flight, r.rwnd)
            for i, r in enumerate(rows)
        ]  # fmt: skip

        def insert(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.executemany(
                    f"INSERT OR IGNORE INTO transfer_events (transfer_id, idx, {_EVENT_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    values,
                )

        await self._db.run(insert)

    async def claim_report(self, transfer_id: str, now: float) -> bool:
        def claim(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                cursor = conn.execute(
                    "UPDATE transfers SET reported_at = ? WHERE id = ? AND reported_at IS NULL",
                    (now, transfer_id),
                )
                return cursor.rowcount == 1

        return await self._db.run(claim)

    async def get_transfer(self, transfer_id: str) -> TransferRecord | None:
        row = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE id = ?", (transfer_id,)
            ).fetchone()
        )
        return TransferRecord(*row) if row else None

    async def list_transfers(self, room: str, limit: int) -> list[TransferRecord]:
        rows = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_TRANSFER_COLUMNS} FROM transfers WHERE room = ?"
                " ORDER BY started_at DESC LIMIT ?",
                (room, limit),
            ).fetchall()
        )
        return [TransferRecord(*row) for row in rows]

    async def events(self, transfer_id: str) -> list[EventRow]:
        rows = await self._db.run(
            lambda c: c.execute(
                f"SELECT {_EVENT_COLUMNS} FROM transfer_events WHERE transfer_id = ? ORDER BY idx",
                (transfer_id,),
            ).fetchall()
        )
        return [EventRow(*row) for row in rows]


def unreferenced_blobs(blobs: BlobStore, referenced: set[str]) -> list[str]:
    """Digests of blobs on disk that no file refers to (blocking: run it in a thread)."""
    found = []
    for path in blobs.root.glob("??/??/*"):
        if is_digest(path.name) and path.name not in referenced:
            found.append(path.name)
    return found
