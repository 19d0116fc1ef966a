"""SQLite, the embedded default store: one connection, WAL, foreign keys, migrations.

Every repository declares a ``Schema``: a component name and an ordered tuple of migration
steps. ``Database.open`` applies the steps a database has not seen yet, each in its own
transaction together with its version bump, so a crash mid-migration leaves the previous
version intact. A database written by a newer SyncroX (a version above what the code knows)
is refused rather than misread, and a corrupt file is reported, never silently replaced.

Access from Trio goes through ``Database.run(fn)``: ``fn(connection)`` runs in a worker
thread, one at a time (SQLite serialises writers anyway), so the event loop never blocks
on disk. With ``worker_thread=False`` it runs inline on the event loop instead: tests in
virtual time need that, because ``MockClock``'s autojump treats a task waiting on a thread
as blocked and leaps the clock to the next deadline (measured: 1000 virtual seconds passed
during one 0.3 s thread call), which would fire every protocol timer spuriously.

``synchronous=NORMAL`` in WAL mode makes every commit survive a crash of the process
(``kill -9``); only a power loss can lose the last commits (see docs/SECURITY.md).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import trio

from syncrox.errors import StoreError

T = TypeVar("T")

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


@dataclass(frozen=True)
class Schema:
    """The migrations of one component; step ``i`` takes it to version ``i + 1``."""

    component: str
    steps: tuple[str, ...]


class Database:
    def __init__(
        self, connection: sqlite3.Connection, path: Path, *, worker_thread: bool = True
    ) -> None:
        self.path = path
        self.worker_thread = worker_thread
        self._connection = connection
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(1)

    @classmethod
    def open(cls, path: Path, schemas: Sequence[Schema], *, worker_thread: bool = True) -> Database:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        try:
            for pragma in _PRAGMAS:
                connection.execute(pragma)
            # SQLite reports most damage as rows of this answer, not as an exception.
            problems = [str(row[0]) for row in connection.execute("PRAGMA quick_check(5)")]
        except sqlite3.Error as exc:
            connection.close()
            raise StoreError(f"cannot open database {path}: {exc}") from exc
        if problems != ["ok"]:
            connection.close()
            raise StoreError(
                f"database {path} is damaged ({'; '.join(problems)}): restore it from a "
                "backup or move it aside; it was left untouched"
            )
        database = cls(connection, path, worker_thread=worker_thread)
        try:
            database.call(lambda conn: _migrate(conn, schemas))
        except BaseException:
            connection.close()
            raise
        return database

    def call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` on the connection now, in this thread (start-up, tests, workers)."""
        with self._lock:
            try:
                return fn(self._connection)
            except sqlite3.Error as exc:
                raise StoreError(f"database error: {exc}") from exc

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in a worker thread (or inline, see the module docstring). It is never
        abandoned half-way on cancellation, so a write either commits or rolls back before
        the caller sees the cancel."""
        if not self.worker_thread:
            await trio.lowlevel.checkpoint()
            return self.call(fn)
        return await trio.to_thread.run_sync(self.call, fn, limiter=self._limiter)

    def close(self) -> None:
        with self._lock:
            self._connection.close()


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any error."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        # SQLite may have rolled back already (a full disk, an I/O error): a second ROLLBACK
        # would raise and hide the real error.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def _migrate(connection: sqlite3.Connection, schemas: Sequence[Schema]) -> None:
    connection.execute(
        "CREATE TABLE IF NOT EXISTS schema_versions"
        " (component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
    )
    for schema in schemas:
        row = connection.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (schema.component,)
        ).fetchone()
        current = row[0] if row else 0
        if current > len(schema.steps):
            raise StoreError(
                f"{schema.component} schema is at version {current}, newer than this "
                f"SyncroX knows ({len(schema.steps)}); refusing to touch it"
            )
        for version in range(current + 1, len(schema.steps) + 1):
            with transaction(connection):
                for statement in _statements(schema.steps[version - 1]):
                    connection.execute(statement)
                connection.execute(
                    "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
                    " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                    (schema.component, version),
                )


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (``executescript`` would commit early)."""
    statements, pending = [], ""
    for piece in script.split(";"):
        pending += piece
        if sqlite3.complete_statement(pending + ";"):
            if pending.strip():
                statements.append(pending.strip())
            pending = ""
        else:
            pending += ";"
    if pending.strip():
        raise StoreError(f"incomplete migration statement: {pending.strip()[:60]}")
    return statements
