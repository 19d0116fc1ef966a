"""Rooms and memberships: the interface the room registry needs, and its SQLite version.

A membership token is a secret held by the client; only its SHA-256 is stored, so a copy of
the database does not let anyone speak as a member.
"""

from __future__ import annotations

import enum
import sqlite3
from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from syncrox.store.sqlite import Database, Schema, transaction

SCHEMA = Schema(
    component="rooms",
    steps=(
        """
        CREATE TABLE rooms (
            code TEXT PRIMARY KEY,
            created_by TEXT NOT NULL,
            created_at REAL NOT NULL,
            last_active REAL NOT NULL
        );
        CREATE TABLE members (
            token_hash TEXT PRIMARY KEY,
            code TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
            user TEXT NOT NULL,
            user_key TEXT NOT NULL,
            joined_at REAL NOT NULL,
            last_seen REAL NOT NULL,
            UNIQUE (code, user_key)
        );
        CREATE INDEX members_by_code ON members (code);
        """,
    ),
)


class JoinOutcome(enum.Enum):
    JOINED = "joined"
    NO_ROOM = "no_room"
    FULL = "full"
    NAME_TAKEN = "name_taken"


@dataclass(frozen=True)
class RoomRecord:
    code: str
    created_by: str
    created_at: float
    last_active: float


@dataclass(frozen=True)
class MemberRecord:
    token_hash: str
    code: str
    user: str
    user_key: str
    joined_at: float
    last_seen: float


class RoomStore(Protocol):
    """What the room registry needs from persistence. Times are Unix epoch seconds."""

    async def insert_room(self, code: str, creator: MemberRecord) -> bool:
        """Create the room with its creator as first member; ``False`` if the code is taken."""

    async def room_codes(self) -> set[str]: ...

    async def get_room(self, code: str) -> RoomRecord | None: ...

    async def insert_member(self, member: MemberRecord, max_members: int) -> JoinOutcome:
        """Add a member unless the room is gone, full, or the name is reserved."""

    async def member_by_token(self, token_hash: str) -> MemberRecord | None: ...

    async def member_by_name(self, code: str, user_key: str) -> MemberRecord | None: ...

    async def delete_member(self, token_hash: str, now: float) -> MemberRecord | None: ...

    async def touch(self, code: str, token_hashes: Collection[str], now: float) -> None:
        """Mark the room, and the given members of it, as active at ``now``."""

    async def expire(
        self,
        *,
        member_idle_before: float,
        room_idle_before: float,
        held_tokens: Collection[str],
        busy_rooms: Collection[str],
    ) -> tuple[list[MemberRecord], list[str]]:
        """Drop lapsed members and empty idle rooms; return what was dropped."""


class SqliteRoomStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def insert_room(self, code: str, creator: MemberRecord) -> bool:
        def insert(conn: sqlite3.Connection) -> bool:
            with transaction(conn):
                cursor = conn.execute(
                    "INSERT INTO rooms (code, created_by, created_at, last_active)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (code) DO NOTHING",
                    (code, creator.user, creator.joined_at, creator.joined_at),
                )
                if cursor.rowcount == 0:
                    return False
                _insert_member(conn, creator)
                return True

        return await self._db.run(insert)

    async def room_codes(self) -> set[str]:
        rows = await self._db.run(lambda c: c.execute("SELECT code FROM rooms").fetchall())
        return {row[0] for row in rows}

    async def get_room(self, code: str) -> RoomRecord | None:
        row = await self._db.run(
            lambda c: c.execute(
                "SELECT code, created_by, created_at, last_active FROM rooms WHERE code = ?",
                (code,),
            ).fetchone()
        )
        return RoomRecord(*row) if row else None

    async def insert_member(self, member: MemberRecord, max_members: int) -> JoinOutcome:
        def insert(conn: sqlite3.Connection) -> JoinOutcome:
            with transaction(conn):
                if not conn.execute(
                    "SELECT 1 FROM rooms WHERE code = ?", (member.code,)
                ).fetchone():
                    return JoinOutcome.NO_ROOM
                (count,) = conn.execute(
                    "SELECT count(*) FROM members WHERE code = ?", (member.code,)
                ).fetchone()
                if count >= max_members:
                    return JoinOutcome.FULL
                if not _insert_member(conn, member):
                    return JoinOutcome.NAME_TAKEN
                conn.execute(
                    "UPDATE rooms SET last_active = ? WHERE code = ?",
                    (member.joined_at, member.code),
                )
                return JoinOutcome.JOINED

        return await self._db.run(insert)

    async def member_by_token(self, token_hash: str) -> MemberRecord | None:
        return await self._member_where("token_hash = ?", (token_hash,))

    async def member_by_name(self, code: str, user_key: str) -> MemberRecord | None:
        return await self._member_where("code = ? AND user_key = ?", (code, user_key))

    async def delete_member(self, token_hash: str, now: float) -> MemberRecord | None:
        def delete(conn: sqlite3.Connection) -> MemberRecord | None:
            with transaction(conn):
                row = conn.execute(
                    _MEMBER_SELECT + " WHERE token_hash = ?", (token_hash,)
                ).fetchone()
                if row is None:
                    return None
                conn.execute("DELETE FROM members WHERE token_hash = ?", (token_hash,))
                conn.execute("UPDATE rooms SET last_active = ? WHERE code = ?", (now, row[1]))
                return MemberRecord(*row)

        return await self._db.run(delete)

    async def touch(self, code: str, token_hashes: Collection[str], now: float) -> None:
        def touch(conn: sqlite3.Connection) -> None:
            with transaction(conn):
                conn.execute("UPDATE rooms SET last_active = ? WHERE code = ?", (now, code))
                conn.executemany(
                    "UPDATE members SET last_seen = ? WHERE token_hash = ?",
                    [(now, token_hash) for token_hash in token_hashes],
                )

        await self._db.run(touch)

    async def expire(
        self,
        *,
        member_idle_before: float,
        room_idle_before: float,
        held_tokens: Collection[str],
        busy_rooms: Collection[str],
    ) -> tuple[list[MemberRecord], list[str]]:
        held, busy = set(held_tokens), set(busy_rooms)

        def expire(conn: sqlite3.Connection) -> tuple[list[MemberRecord], list[str]]:
            with transaction(conn):
                rows = conn.execute(
                    _MEMBER_SELECT + " WHERE last_seen < ?", (member_idle_before,)
                ).fetchall()
                lapsed = [MemberRecord(*row) for row in rows if row[0] not in held]
                conn.executemany(
                    "DELETE FROM members WHERE token_hash = ?", [(m.token_hash,) for m in lapsed]
                )
                idle = conn.execute(
                    "SELECT code FROM rooms WHERE last_active < ?"
                    " AND NOT EXISTS (SELECT 1 FROM members WHERE members.code = rooms.code)",
                    (room_idle_before,),
                ).fetchall()
                dropped = [row[0] for row in idle if row[0] not in busy]
                conn.executemany("DELETE FROM rooms WHERE code = ?", [(c,) for c in dropped])
                return lapsed, dropped

        return await self._db.run(expire)

    async def _member_where(self, where: str, args: tuple[str, ...]) -> MemberRecord | None:
        row = await self._db.run(
            lambda c: c.execute(_MEMBER_SELECT + " WHERE " + where, args).fetchone()
        )
        return MemberRecord(*row) if row else None


_MEMBER_SELECT = "SELECT token_hash, code, user, user_key, joined_at, last_seen FROM members"


def _insert_member(conn: sqlite3.Connection, member: MemberRecord) -> bool:
    cursor = conn.execute(
        "INSERT INTO members (token_hash, code, user, user_key, joined_at, last_seen)"
        " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        (
            member.token_hash,
            member.code,
            member.user,
            member.user_key,
            member.joined_at,
            member.last_seen,
        ),
    )
    return cursor.rowcount == 1
