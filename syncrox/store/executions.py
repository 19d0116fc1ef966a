"""Per-room history of code executions: the interface the exec service needs, and SQLite.

Each run is one row: who, when, which language, the verdict, the durations, the code, the
(already capped) outputs, and the stdin as the caller chose to keep it (the exec service keeps
its first ``exec.history_stdin_bytes`` and marks a longer one truncated ``stdin``) with the
size it had when submitted. A room keeps its newest ``keep`` runs. Rows belong to their room
(``ON DELETE CASCADE``): when a room expires its history goes with it, so a later room that
happens to get the same code never sees it. Ids are never reused (``AUTOINCREMENT``), so an
id always names the same run or none.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Protocol

from syncrox.store.sqlite import Database, Schema, transaction

SCHEMA = Schema(
    component="executions",
    steps=(
        """
        CREATE TABLE executions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            room TEXT NOT NULL REFERENCES rooms (code) ON DELETE CASCADE,
            user TEXT NOT NULL,
            language TEXT NOT NULL,
            created_at REAL NOT NULL,
            verdict TEXT NOT NULL,
            exit_code INTEGER,
            compile_ms INTEGER,
            run_ms INTEGER,
            truncated TEXT NOT NULL,
            code BLOB NOT NULL,
            stdin_bytes INTEGER NOT NULL,
            diag BLOB NOT NULL,
            stdout BLOB NOT NULL,
            stderr BLOB NOT NULL
        );
        CREATE INDEX executions_by_room ON executions (room, id);
        """,
        # The stdin is kept too. Runs recorded before kept none: theirs reads as empty, and
        # one that had a stdin is marked truncated `stdin` (nothing of it was kept).
        """
        ALTER TABLE executions ADD COLUMN stdin BLOB NOT NULL DEFAULT x'';
        UPDATE executions
            SET truncated = CASE truncated WHEN '' THEN 'stdin' ELSE truncated || ',stdin' END
            WHERE stdin_bytes > 0;
        """,
    ),
)


@dataclass(frozen=True)
class NewExecution:
    room: str
    user: str
    language: str
    created_at: float  # Unix epoch seconds
    verdict: str
    exit_code: int | None
    compile_ms: int | None
    run_ms: int | None
    truncated: tuple[str, ...]
    code: bytes
    stdin: bytes  # what the history keeps of the stdin: all of it, or its first bytes
    stdin_bytes: int  # the size of the stdin as submitted
    diag: bytes
    stdout: bytes
    stderr: bytes


@dataclass(frozen=True)
class ExecutionSummary:
    """A stored run without its blobs; their sizes instead."""

    run_id: int
    room: str
    user: str
    language: str
    created_at: float
    verdict: str
    exit_code: int | None
    compile_ms: int | None
    run_ms: int | None
    truncated: tuple[str, ...]
    code_bytes: int
    diag_bytes: int
    stdout_bytes: int
    stderr_bytes: int
    stdin_bytes: int  # of the stdin kept (``stdin`` in ``truncated``: the run had more)


@dataclass(frozen=True)
class ExecutionRecord:
    summary: ExecutionSummary
    code: bytes
    diag: bytes
    stdout: bytes
    stderr: bytes
    stdin: bytes


class ExecutionStore(Protocol):
    async def record(self, run: NewExecution, keep: int) -> int:
        """Store a run, drop the room's runs beyond the newest ``keep``; return its id."""

    async def recent(self, room: str, limit: int) -> list[ExecutionSummary]:
        """The room's newest runs, newest first."""

    async def get(self, room: str, run_id: int) -> ExecutionRecord | None:
        """One run of that room (``None`` if absent or another room's)."""


_SELECT_SUMMARY = (
    "SELECT id, room, user, language, created_at, verdict, exit_code, compile_ms, run_ms,"
    " truncated, length(code), length(diag), length(stdout), length(stderr), length(stdin)"
)
_SUMMARY_COLUMNS = 15
_SELECT_RECENT = _SELECT_SUMMARY + " FROM executions WHERE room = ? ORDER BY id DESC LIMIT ?"
_SELECT_ONE = _SELECT_SUMMARY + ", code, diag, stdout, stderr, stdin FROM executions"
_SELECT_ONE += " WHERE room = ? AND id = ?"


class SqliteExecutionStore:
    def __init__(self, database: Database) -> None:
        self._db = database

    async def record(self, run: NewExecution, keep: int) -> int:
        def insert(conn: sqlite3.Connection) -> int:
            with transaction(conn):
                cursor = conn.execute(
                    "INSERT INTO executions (room, user, language, created_at, verdict,"
                    " exit_code, compile_ms, run_ms, truncated, code, stdin_bytes, diag,"
                    " stdout, stderr, stdin)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        run.room, run.user, run.language, run.created_at, run.verdict,
                        run.exit_code, run.compile_ms, run.run_ms, ",".join(run.truncated),
                        run.code, run.stdin_bytes, run.diag, run.stdout, run.stderr,
                        run.stdin,
                    ),
                )  # fmt: skip
                run_id = int(cursor.lastrowid or 0)
                conn.execute(
                    "DELETE FROM executions WHERE room = ? AND id NOT IN"
                    " (SELECT id FROM executions WHERE room = ? ORDER BY id DESC LIMIT ?)",
                    (run.room, run.room, max(1, keep)),
                )
                return run_id

        return await self._db.run(insert)

    async def recent(self, room: str, limit: int) -> list[ExecutionSummary]:
        rows = await self._db.run(lambda c: c.execute(_SELECT_RECENT, (room, limit)).fetchall())
        return [_summary(row) for row in rows]

    async def get(self, room: str, run_id: int) -> ExecutionRecord | None:
        row = await self._db.run(lambda c: c.execute(_SELECT_ONE, (room, run_id)).fetchone())
        if row is None:
            return None
        blobs = (bytes(blob) for blob in row[_SUMMARY_COLUMNS:])
        return ExecutionRecord(_summary(row[:_SUMMARY_COLUMNS]), *blobs)


def _summary(row: tuple[object, ...]) -> ExecutionSummary:
    values = list(row)
    truncated = str(values[9])
    values[9] = tuple(truncated.split(",")) if truncated else ()
    return ExecutionSummary(*values)  # type: ignore[arg-type]
